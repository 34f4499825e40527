"""The HTML report that gathers every stage's results into one self-contained page."""
