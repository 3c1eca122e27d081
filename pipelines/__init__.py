"""Beam pipelines: one module per stage (``python -m pipelines.<stage>``), thin DoFns around ``filters/``."""

# A document stage's kept rows are OUTPUT/train-<file>-<split>-<roll>.parquet. "train" is the split keyword
# by which Hugging Face ``datasets`` finds a directory's data files, so ``load_dataset("parquet",
# data_dir=OUTPUT)`` loads exactly these, not stats.json, rejected/, removed/ or duplicates/ (named part-*).
DOCS_PREFIX = "train"
DOCS_GLOB = f"{DOCS_PREFIX}-*.parquet"
