"""Benchmark decontamination: find training documents that contain evaluation text.

A document is *contaminated* when it shares a word n-gram with any text of an evaluation set
(GPT-3, Brown et al. 2020, appendix C: 13-grams of lowercased words, punctuation ignored). Words
are ``\\w+`` runs of the lowercased text, so "Net income rose 12%." and "net income, rose 12" are
the same four words. An evaluation text shorter than ``ngram`` words but at least ``min_words``
long is matched whole (GPT-3 lowered N to the task's shortest examples, never below 8); shorter
ones cannot be told apart from common phrases and are skipped (counted).

Every n-gram is a 64-bit polynomial hash of its words' 64-bit hashes, so the index of an evaluation
set is a sorted ``uint64`` array plus a ``uint16`` set number per entry: **10 bytes per n-gram, 10 MB
per million evaluation n-grams** (a Python ``set`` of the strings would take ~150 MB). A document's
n-grams are hashed with a few vectorized numpy passes and looked up with one ``searchsorted``.
A false match needs a 64-bit collision: about n_doc_ngrams x n_index / 2^64 per document, i.e. never.

    index = ContaminationIndex.build({"finqa": ["What was the net income ..."]}, ngram=13)
    index.find(document_text)   # -> Match(eval_set="finqa", words="what was the net ...") or None

Pure Python + numpy, no Beam: ``pipelines/filter.py`` builds the index once at launch and hands it
to the workers as a side input.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_NGRAM = 13  # GPT-3 (Brown et al. 2020), appendix C
DEFAULT_MIN_WORDS = 8  # GPT-3: N never below 8 for short examples
_WORD = re.compile(r"\w+")
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier (golden ratio) of the polynomial hash
_WORD_CACHE_MAX = 1_000_000  # words whose hash is remembered per process (~100 MB at most)
_word_cache: dict[str, int] = {}


def words(text: str) -> list[str]:
    """The lowercased ``\\w+`` words of ``text`` (punctuation and spacing ignored)."""
    return _WORD.findall(text.lower())


def word_hashes(ws: list[str]) -> np.ndarray:
    """A stable 64-bit hash per word (blake2b, the same in every process and on every worker)."""
    cache = _word_cache
    if len(cache) > _WORD_CACHE_MAX:
        cache.clear()
    hashes = [cache.get(w) for w in ws]
    if None in hashes:
        for i, h in enumerate(hashes):
            if h is None:
                w = ws[i]
                hashes[i] = cache[w] = int.from_bytes(hashlib.blake2b(w.encode("utf-8", "surrogatepass"),
                                                                      digest_size=8).digest(), "little")
    return np.array(hashes, dtype=np.uint64)


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """Hashes of every run of ``n`` consecutive words (``len - n + 1`` of them; none if shorter):
    h = (...((w0 * M + w1) * M + w2) ...) mod 2^64, computed for all positions at once."""
    count = len(hashes) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        acc = hashes[:count].copy()
        for k in range(1, n):
            acc = acc * _MULT + hashes[k:k + count]
    return acc


@dataclass(frozen=True)
class Match:
    eval_set: str  # the evaluation set the document shares text with
    words: str  # the shared n-gram (its lowercased words), for the removed record


@dataclass
class ContaminationIndex:
    """Sorted n-gram hashes of every evaluation text, per n-gram length (``ngram`` for long texts;
    each shorter length in [min_words, ngram) for the short texts matched whole)."""

    ngram: int
    min_words: int
    names: list[str]  # set number -> evaluation set name
    keys: dict[int, np.ndarray] = field(default_factory=dict)  # length -> sorted uint64 hashes
    sets: dict[int, np.ndarray] = field(default_factory=dict)  # length -> uint16 set number per hash
    summary: dict[str, dict[str, int]] = field(default_factory=dict)  # set -> texts, ngrams, too_short

    @classmethod
    def build(cls, eval_sets: dict[str, Iterable[str]], ngram: int = DEFAULT_NGRAM,
              min_words: int = DEFAULT_MIN_WORDS) -> ContaminationIndex:
        if ngram < 1 or not 1 <= min_words <= ngram:
            raise ValueError(f"decontaminate: need 1 <= min_words <= ngram, got min_words={min_words}, ngram={ngram}")
        if len(eval_sets) > np.iinfo(np.uint16).max:
            raise ValueError(f"decontaminate: at most {np.iinfo(np.uint16).max} evaluation sets")
        names = list(eval_sets)
        parts: dict[int, list[tuple[np.ndarray, int]]] = {}
        summary = {}
        for number, name in enumerate(names):
            stats = {"texts": 0, "ngrams": 0, "too_short": 0}
            for text in eval_sets[name]:
                ws = words(text)
                stats["texts"] += 1
                if len(ws) < min_words:
                    stats["too_short"] += 1
                    continue
                n = min(ngram, len(ws))
                hashes = np.unique(ngram_hashes(word_hashes(ws), n))
                parts.setdefault(n, []).append((hashes, number))
                stats["ngrams"] += len(hashes)
            summary[name] = stats
        index = cls(ngram, min_words, names, summary=summary)
        for n, chunks in sorted(parts.items()):
            keys = np.concatenate([h for h, _ in chunks])
            sets = np.concatenate([np.full(len(h), s, dtype=np.uint16) for h, s in chunks])
            order = np.argsort(keys, kind="stable")  # an n-gram in two sets: the first set named wins
            keys, sets = keys[order], sets[order]
            first = np.ones(len(keys), dtype=bool)
            first[1:] = keys[1:] != keys[:-1]
            index.keys[n], index.sets[n] = keys[first], sets[first]
        return index

    @property
    def n_ngrams(self) -> int:
        return int(sum(len(k) for k in self.keys.values()))

    @property
    def nbytes(self) -> int:
        """Memory of the index arrays (what every worker holds)."""
        return int(sum(k.nbytes for k in self.keys.values()) + sum(s.nbytes for s in self.sets.values()))

    def find(self, text: str) -> Match | None:
        """The first n-gram of ``text`` found in an evaluation set (in text order), or None."""
        if not self.keys:
            return None
        ws = words(text)
        if len(ws) < min(self.keys):
            return None
        hashes = word_hashes(ws)
        best: tuple[int, int, int] | None = None  # (position, length, set number)
        for n, keys in self.keys.items():
            grams = ngram_hashes(hashes, n)
            if not len(grams):
                continue
            at = np.minimum(np.searchsorted(keys, grams), len(keys) - 1)
            hit = np.flatnonzero(keys[at] == grams)
            if len(hit) and (best is None or hit[0] < best[0]):
                best = (int(hit[0]), n, int(self.sets[n][at[hit[0]]]))
        if best is None:
            return None
        pos, n, number = best
        return Match(self.names[number], " ".join(ws[pos:pos + n]))


# ------------------------------------------------------------------------ evaluation sets


@dataclass(frozen=True)
class EvalSetConfig:
    """One evaluation set: JSON Lines files (``path``, a glob, .gz allowed) or a Hugging Face dataset
    (``hf``, with ``hf_config`` and ``split``); ``fields`` are the record fields whose text (a string
    or a list of strings) is evaluation text, each matched on its own."""

    name: str
    path: str | None = None
    hf: str | None = None
    hf_config: str | None = None
    split: str = "test"
    data_files: str | None = None  # with hf: "json", "csv" or "parquet": local files as a dataset
    fields: tuple[str, ...] = ("text",)


def _texts(record: dict[str, Any], fields: tuple[str, ...]) -> Iterator[str]:
    for name in fields:
        value = record.get(name)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and v.strip():
                yield v


def eval_texts(cfg: EvalSetConfig) -> Iterator[str]:
    """Every evaluation text of one set (a missing file or dataset raises, so a typo is an error,
    not a silently empty set)."""
    if (cfg.path is None) == (cfg.hf is None):
        raise ValueError(f"decontaminate set {cfg.name!r}: give exactly one of path, hf")
    if cfg.hf is not None:
        from datasets import load_dataset  # the network only when the user names a hub dataset

        for record in load_dataset(cfg.hf, cfg.hf_config, split=cfg.split, data_files=cfg.data_files):
            yield from _texts(record, cfg.fields)
        return
    paths = sorted(glob.glob(cfg.path))
    if not paths:
        raise FileNotFoundError(f"decontaminate set {cfg.name!r}: {cfg.path!r} matches no files")
    for path in paths:
        with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"decontaminate set {cfg.name!r}: {path}:{number} is not JSON ({exc})") from None
                if isinstance(record, dict):
                    yield from _texts(record, cfg.fields)
