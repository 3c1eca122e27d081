"""Beam pipelines: one module per stage (``python -m pipelines.<stage>``), thin DoFns around ``filters/``.

This file holds the conventions every command shares and imports nothing heavy (no Beam), so
``mixtures``, ``train`` and ``filters.quality`` use the same ones.
"""

from __future__ import annotations

import sys
from typing import NoReturn

# A document stage's kept rows are OUTPUT/train-<file>-<split>-<roll>.parquet. "train" is the split keyword
# by which Hugging Face ``datasets`` finds a directory's data files, so ``load_dataset("parquet",
# data_dir=OUTPUT)`` loads exactly these, not stats.json, rejected/, removed/ or duplicates/ (named part-*).
DOCS_PREFIX = "train"
DOCS_GLOB = f"{DOCS_PREFIX}-*.parquet"

# Exit status of every command (pipelines.*, mixtures.*, train.*, filters.quality): 0 done, 2 unusable
# input from the user (paths, options, configs; one ``error:`` line, no traceback; argparse's own errors
# are 2 too), 3 a stage's counts do not balance. Anything else is a bug or a crash, with its traceback.
EXIT_USAGE = 2
EXIT_UNBALANCED = 3


def fail(message: str) -> NoReturn:
    """Exit with status 2 and a clear one-line error (bad paths, options, configs)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)
