"""Evaluation: weight-grid sweeps, comparisons, the Pareto measures and the response audit."""
