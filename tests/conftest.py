"""Shared test fixtures: real text from the embedded sample in data/."""

from __future__ import annotations

import gzip
import json
import re
import uuid
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


def ref_jaccard(a: str, b: str, n: int = 5) -> float:
    """Independent reference for near-dup tests: regex words, Python sets of word n-gram tuples."""
    def grams(t: str) -> set[tuple[str, ...]]:
        w = re.findall(r"[^\W_]+", t.lower())
        return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}
    sa, sb = grams(a), grams(b)
    return len(sa & sb) / len(sa | sb)


def load_stage_dir_both_ways(out: Path, cache: Path) -> list:
    """A stage directory loaded as users do: ``load_dataset(DIR)`` (the dataset card's configs) and
    ``load_dataset("parquet", data_dir=DIR)`` (datasets' own split-keyword file discovery), offline."""
    import datasets

    return [datasets.load_dataset(str(out), split="train", cache_dir=str(cache / "a")),
            datasets.load_dataset("parquet", data_dir=str(out), split="train", cache_dir=str(cache / "b"))]


def warc_record(rtype: str, url: str, http: bytes) -> bytes:
    """One gzip member holding one WARC record of type ``rtype`` (``response``, ``request``...);
    the same arguments give the same bytes."""
    record_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{rtype} {url} {http!r}")
    headers = (f"WARC/1.0\r\nWARC-Type: {rtype}\r\nWARC-Target-URI: {url}\r\n"
               f"WARC-Date: 2026-11-27T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{record_id}>\r\n"
               f"Content-Type: application/http; msgtype={rtype}\r\nContent-Length: {len(http)}\r\n\r\n")
    return gzip.compress(headers.encode() + http + b"\r\n\r\n", mtime=0)
