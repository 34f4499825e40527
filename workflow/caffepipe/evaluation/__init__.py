"""Evaluation and analyses: every snapshot on the test set, then the error analyses and their figures."""
