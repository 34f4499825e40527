"""caffepipe: a reproducible Caffe experiment pipeline, one module per stage.

Every stage is `caffepipe <stage> ...` (see cli.py); Snakemake and DVC only call those commands.
"""
__version__ = "0.1.0"
