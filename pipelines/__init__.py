"""Beam pipelines: one module per stage (``python -m pipelines.<stage>``), thin DoFns around ``filters/``."""
