"""Shared test fixtures: real text from the embedded sample in data/."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SHARED_CORPORA = ROOT.parent / "shared" / "corpora"


def read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="session")
def finance_docs() -> list[dict]:
    return read_jsonl_gz(DATA / "finance" / "reuters_finance.jsonl.gz")


@pytest.fixture(scope="session")
def general_docs() -> list[dict]:
    return read_jsonl_gz(DATA / "general" / "bbc_nonbusiness.jsonl.gz")
