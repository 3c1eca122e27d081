"""The layout of a run's work directory and of each stage's output directory: the names every package agrees on.

A document stage's kept rows are ``OUTPUT/train-<file>-<split>-<roll>.parquet``. "train" is the split keyword by
which Hugging Face ``datasets`` finds a directory's data files, so ``load_dataset("parquet", data_dir=OUTPUT)``
loads exactly these, not stats.json, rejected/, removed/ or duplicates/ (named ``part-*``).
"""

from __future__ import annotations

DOCS_PREFIX = "train"
DOCS_GLOB = f"{DOCS_PREFIX}-*.parquet"
DATASET_CARD = "DATASET_CARD.md"  # the mixture's dataset card: MIX/DATASET_CARD.md (runs/dataset_card.py)
