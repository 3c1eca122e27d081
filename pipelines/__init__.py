"""Beam pipelines: one module per stage (``python -m pipelines.<stage>``), thin DoFns around ``filters/``.

The conventions every command shares (exit codes, the ``error:`` line, config reading) are in ``core/``; the run
orchestrator that chains the stages is ``run/orchestrator.py`` (``python -m run``).
"""
