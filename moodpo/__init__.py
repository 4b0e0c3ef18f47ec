"""moodpo: steerable multi-objective alignment with MO-ODPO (Gupta et al., arXiv 2503.00295)."""

__version__ = "0.1.0"
