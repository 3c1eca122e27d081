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


def test_holdout_split_keeps_a_group_together():
    """Excerpts of one filing (same ``group``) fall on the same side; without a group the id decides."""
    from filters.quality import split_key

    recs = [{"id": f"filing{f}-{i}", "group": f"filing{f}"} for f in range(200) for i in range(5)]
    sides = {}
    for r in recs:
        sides.setdefault(r["group"], set()).add(is_holdout(split_key(r), 0.2, 0))
    assert all(len(s) == 1 for s in sides.values())
    assert 0.1 < sum(True in s for s in sides.values()) / len(sides) < 0.3
    assert split_key({"id": 7}) == "7"


def test_pick_threshold_weighs_precision():
    from filters.quality import pick_threshold

    truth = [True] * 10 + [False] * 10
    scores = [0.95] * 8 + [0.35, 0.35] + [0.4] * 3 + [0.1] * 7
    # 0.3 keeps every positive but 3 negatives; 0.45 loses 2 positives, no negative: F0.5 prefers purity
    assert pick_threshold(truth, scores, beta=0.5) >= 0.45
    assert pick_threshold(truth, scores, beta=4.0) <= 0.35


def test_filing_html_becomes_lines_with_table_rows_and_no_hidden_xbrl():
    """The training-set builder's HTML conversion (benchmarks/build_finance_train.py): a table row is one line
    with its cells joined by ' | ', numbers as written; the iXBRL header and display:none text are dropped."""
    from benchmarks.build_finance_train import chunks, html_to_text, nlp_to_text

    html = (b"<html><body><div style='display:none'><ix:header>dei:EntityCentralIndexKey 0000320193</ix:header>"
            b"</div><p>Net sales increased <b>8%</b> during 2024.</p><table><tr><td>iPhone</td><td>$</td>"
            b"<td>51,982</td><td>(5.2</td><td>)</td></tr><tr><td>Services</td><td>12.5%</td></tr></table>"
            b"<script>var x = 1;</script><p>Item 7.</p></body></html>")
    assert html_to_text(html).split("\n") == ["Net sales increased 8% during 2024.", "iPhone | 51,982 | (5.2)",
                                              "Services | 12.5%", "Item 7."]
    text = "\n".join(f"line {i} " + "x" * 90 for i in range(200))
    parts = chunks(text, size=1_000)
    assert "\n".join(parts) == text and all(len(p) <= 1_100 for p in parts)
    nlp = "token|speaker|ts|endTs|punctuation|case|tags\nGood|0||||UC|[]\nmorning|0|||.|LC|[]\nThanks|1|||,|UC|[]\n"
    assert nlp_to_text(nlp) == "Speaker 0: Good morning.\n\nSpeaker 1: Thanks,"
