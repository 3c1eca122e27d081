"""fastText classifiers: training on real labelled text, held-out evaluation, scoring, and the
corpus-wide top-fraction cut-off used by the filter stage."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest

from filters.quality import FastTextScorer, is_holdout, main, precision_recall, train
from pipelines.filter import HISTOGRAM_BINS, top_fraction_threshold

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")


@pytest.fixture(scope="module")
def domain_model(tmp_path_factory) -> tuple[str, dict]:
    out = str(tmp_path_factory.mktemp("cls") / "finance.ftz")
    report = train(
        [os.path.join(DATA, "finance", "*.jsonl.gz")],
        [os.path.join(DATA, "general", "*.jsonl.gz")],
        out,
        holdout=0.25,
        epoch=10,
        max_docs=60,
    )
    return out, report


def first_text(path: str) -> str:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.loads(f.readline())["text"]


def test_domain_classifier_separates_finance_from_general_text(domain_model):
    path, report = domain_model
    assert report["holdout_pos"] >= 20 and report["holdout_neg"] >= 40
    assert report["precision"] >= 0.85 and report["recall"] >= 0.85, report
    assert path.endswith(".ftz") and os.path.getsize(path) < 2_000_000  # quantized: small


def test_scorer_gives_probabilities_in_the_right_order(domain_model):
    scorer = FastTextScorer(domain_model[0])
    finance = first_text(os.path.join(DATA, "finance", "reuters_finance.jsonl.gz"))
    novel = first_text(os.path.join(DATA, "general", "austen.jsonl.gz"))
    s_fin, s_novel = scorer.score(finance), scorer.score(novel)
    assert 0.0 <= s_novel < 0.5 < s_fin <= 1.0
    assert scorer.score_batch([finance, novel]) == pytest.approx([s_fin, s_novel], abs=1e-6)
    with pytest.raises(ValueError):
        FastTextScorer(domain_model[0], label="quality")


def test_cli_reports_and_fails_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "train",
                "--positives",
                str(tmp_path / "none*.jsonl"),
                "--negatives",
                "x",
                "--output",
                str(tmp_path / "m.ftz"),
            ]
        )
    assert exc.value.code == 2 and capsys.readouterr().err.startswith("error: ")


def test_holdout_split_is_stable_and_sized():
    ids = [f"doc-{i}" for i in range(2000)]
    held = [i for i in ids if is_holdout(i, 0.2, seed=0)]
    assert held == [i for i in ids if is_holdout(i, 0.2, seed=0)]
    assert 0.15 < len(held) / len(ids) < 0.25
    assert held != [i for i in ids if is_holdout(i, 0.2, seed=1)]


def test_precision_recall():
    r = precision_recall([True, True, False, False], [True, False, True, False])
    assert (r["precision"], r["recall"]) == (0.5, 0.5)


def test_top_fraction_threshold_keeps_that_fraction():
    rng = np.random.default_rng(0)
    scores = rng.beta(2, 5, size=10_000)
    hist = np.bincount(
        np.minimum((scores * HISTOGRAM_BINS).astype(int), HISTOGRAM_BINS - 1), minlength=HISTOGRAM_BINS
    )
    for fraction in (0.1, 0.3, 0.5):
        t = top_fraction_threshold(hist, fraction)
        assert abs((scores >= t).mean() - fraction) < 0.002
    assert top_fraction_threshold(np.zeros(HISTOGRAM_BINS, dtype=np.int64), 0.5) == 0.0
