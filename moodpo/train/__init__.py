"""Training: the online MO-ODPO loop, its pairs, loss and checkpoints, and the Rewarded Soups baseline."""
