"""Language ID on real multilingual text (tests/data/langid_samples.jsonl: 13 languages from
../shared/corpora/multilingual, built by benchmarks/build_langid_set.py)."""

from __future__ import annotations

import gzip
import json
import os
from collections import defaultdict

import pytest

from filters.langid import LanguageIdentifier, identify, sample_text

DATA = os.path.join(os.path.dirname(__file__), "data", "langid_samples.jsonl")
SAMPLE_DOCS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "general", "austen.jsonl.gz")


@pytest.fixture(scope="module")
def lid() -> LanguageIdentifier:
    return LanguageIdentifier()


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    with open(DATA, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_identifies_at_least_eight_languages_on_real_text(lid, samples):
    correct: dict[str, list[bool]] = defaultdict(list)
    for doc in samples:
        lang, score = lid.identify(doc["text"])
        assert 0.0 <= score <= 1.0
        correct[doc["lang"]].append(lang == doc["lang"])
    assert len(correct) >= 8
    per_lang = {lang: sum(v) / len(v) for lang, v in correct.items()}
    # every language is mostly right, and overall nearly all documents are
    assert min(per_lang.values()) >= 0.75, per_lang
    assert sum(sum(v) for v in correct.values()) / len(samples) >= 0.95, per_lang


def test_codes_are_iso_639_1(lid, samples):
    langs = {lid.identify(d["text"])[0] for d in samples}
    assert {"en", "de", "ru", "ja", "zh", "ko", "el", "he"} <= langs
    assert all(len(code) == 2 for code in langs)


def test_batch_form_matches_single_calls(lid, samples):
    texts = [d["text"] for d in samples[::7]]
    batch = lid.identify_batch(texts)
    single = [lid.identify(t) for t in texts]
    assert [b[0] for b in batch] == [s[0] for s in single]
    assert all(abs(b[1] - s[1]) < 1e-5 for b, s in zip(batch, single))
    assert lid.identify_batch([]) == []


def test_multiline_text_is_classified_like_one_line(lid, samples):
    doc = next(d for d in samples if d["lang"] == "de")
    lines = doc["text"].replace(". ", ".\n")
    assert lid.identify(lines)[0] == "de"  # fastText rejects "\n" in predict(): we replace it


def test_long_document_uses_a_bounded_sample_from_all_of_it():
    with gzip.open(SAMPLE_DOCS, "rt", encoding="utf-8") as f:
        text = json.loads(f.readline())["text"]
    assert len(text) > 20_000
    sample = sample_text(text, sample_chars=5000, windows=5)
    assert len(sample) <= 5000 + 5 and "\n" not in sample
    tail_words = text[-900:].split()[2:6]
    assert " ".join(tail_words) in sample.replace("  ", " ")  # the end of the text is represented
    assert sample_text("short text\nwith a newline") == "short text with a newline"


def test_long_document_language_decided_by_its_body_not_its_preamble(lid, samples):
    # an English licence header before a long Russian text: the sample spans the whole text
    russian = " ".join(d["text"] for d in samples if d["lang"] == "ru")
    english = "This file is distributed under the terms of the GNU General Public License. " * 30
    text = english + (" " + russian) * 12
    assert len(text) > 10_000 and len(english) > 2000  # the first sample window is all English
    assert lid.identify(english)[0] == "en"
    assert lid.identify(text)[0] == "ru"


def test_module_level_identify_uses_the_bundled_model(lid, samples):
    for s in samples[:10]:
        assert identify(s["text"]) == lid.identify(s["text"])
