"""The filter stage end to end on real documents: accounting, outputs, modes, report."""

from __future__ import annotations

import glob
import gzip
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.documents import DOC_SCHEMA
from filters.quality import train
from pipelines import filter as stage
from pipelines import rule_report
from tests.conftest import load_stage_dir_both_ways

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
PICK = {
    "general/bbc_nonbusiness": 14,
    "general/python_docs": 8,
    "general/austen": 3,
    "multilingual/fortunes": 12,
    "finance/sec_10q_aapl": 5,
    "finance/reuters_finance": 6,
}


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory) -> str:
    """A clean-stage-shaped directory with 48 real documents of six sources."""
    rows = []
    for name, n in PICK.items():
        with gzip.open(os.path.join(DATA, f"{name}.jsonl.gz"), "rt", encoding="utf-8") as f:
            for line in list(f)[:n]:
                rec = json.loads(line)
                rows.append(
                    {
                        "id": rec["id"],
                        "text": rec["text"],
                        "source": rec["source"],
                        "domain": "domain" if name.startswith("finance") else "general",
                        "meta": json.dumps(rec.get("meta") or {}),
                    }
                )
    out = tmp_path_factory.mktemp("clean")
    pq.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), out / "train-00000-of-00001.parquet")
    return str(out)


def read_dir(directory: str) -> list[dict]:
    rows = []
    for path in sorted(glob.glob(os.path.join(directory, "train-*.parquet"))):
        rows += pq.read_table(path).to_pylist()
    return rows


def read_removed(directory: str) -> list[dict]:
    return [
        json.loads(line)
        for p in sorted(glob.glob(os.path.join(directory, "removed", "part-*.jsonl")))
        for line in open(p, encoding="utf-8")
    ]


def test_stage_run_balances_and_writes_kept_and_removed(clean_dir, tmp_path, capsys):
    out = str(tmp_path / "filter")
    stats = stage.main(["--input", clean_dir, "--output", out])
    assert stats["input"] == 48 and stats["balanced"]
    assert stats["input"] == stats["output"] + sum(stats["removed"].values())
    kept, removed = read_dir(out), read_removed(out)
    assert len(kept) == stats["output"] and len(removed) == sum(stats["removed"].values())
    # the five document columns and the new ones
    assert {"id", "text", "source", "domain", "meta", "lang", "lang_score"} <= set(kept[0])
    assert all(d["lang"] == "en" and d["lang_score"] >= 0.65 for d in kept)
    # most fortunes are not English: removed as such, with a snippet for the report
    reasons = {(r["source"], r["reason"]) for r in removed}
    assert ("fortunes", "lang_not_allowed") in reasons
    assert all(r["id"] and r["source"] and r["reason"] and r["snippet"] for r in removed)
    assert {d["source"] for d in kept} >= {"bbc_news"}
    assert json.load(open(os.path.join(out, "stats.json")))["removed"] == stats["removed"]
    # per source and per language, for the report's funnel
    assert stats["by_source"]["fortunes"]["removed"]["lang_not_allowed"] >= 1
    assert sum(s["input"] for s in stats["by_source"].values()) == 48 == sum(stats["languages"].values())
    assert stats["languages"]["en"] >= len(kept)
    for ds in load_stage_dir_both_ways(out, tmp_path / "hf_cache"):  # not removed/*.jsonl nor stats.json
        assert ds["id"] == [d["id"] for d in kept]
    report = rule_report.main([out, "--examples", "1"])
    assert "lang_not_allowed" in report and "[fortunes/" in report


def test_annotate_only_keeps_everything_and_records_every_verdict(clean_dir, tmp_path):
    out = str(tmp_path / "annotate")
    stats = stage.main(["--input", clean_dir, "--output", out, "--annotate-only"])
    rows = read_dir(out)
    assert stats["output"] == stats["input"] == len(rows) == 48 and stats["removed"] == {}
    failing = [json.loads(r["filter_reasons"]) for r in rows if json.loads(r["filter_reasons"])]
    assert failing and any(len(f) > 1 for f in failing)  # every rule's verdict, not just the first
    assert sum(v for k, v in stats["counts"].items() if k.startswith("would_remove/")) == len(failing)
    assert "annotate-only" in rule_report.format_report(out)


def test_classifier_scores_threshold_and_top_fraction(clean_dir, tmp_path):
    model = str(tmp_path / "finance.bin")
    train(
        [os.path.join(DATA, "finance", "*.jsonl.gz")],
        [os.path.join(DATA, "general", f"{name}.jsonl.gz")  # the general sources of the fixture's kind
         for name in ("bbc_nonbusiness", "python_docs", "austen", "wikipedia_en", "speeches")],
        model,
        epoch=5,
        quantize=False,
        max_docs=40,
    )
    config = tmp_path / "cls.yaml"
    config.write_text(
        f"gopher_repetition: {{enabled: false}}\ngopher_quality: {{enabled: false}}\n"
        f"c4: {{enabled: false}}\nfineweb: {{enabled: false}}\n"
        f"classifiers:\n  - {{name: fin, path: {model}, threshold: 0.5}}\n"
        f"  - {{name: top, path: {model}, top_fraction: 0.5}}\n"
    )
    out = str(tmp_path / "cls")
    stats = stage.main(["--input", clean_dir, "--output", out, "--config", str(config)])
    assert stats["balanced"] and "threshold/top" in stats
    kept = read_dir(out)
    assert kept and all(d["fin_score"] >= 0.5 and d["top_score"] >= stats["threshold/top"] for d in kept)
    finance_kept = sum(d["domain"] == "domain" for d in kept)
    assert finance_kept >= 0.6 * len(kept)
    assert stats["removed"].get("classifier_fin", 0) > 0
    assert not list((tmp_path / "cls" / "_scored").glob("*"))  # the first pass's parts are gone
    # the top-fraction cut reads the whole corpus: small splits, two processes, same bytes
    again = str(tmp_path / "again")
    stage.main(["--input", clean_dir, "--output", again, "--config", str(config), "--split-mb", "0.05",
                "--direct_running_mode", "multi_processing", "--direct_num_workers", "2"])
    assert read_dir(again) == kept
    annotated = stage.main(["--input", clean_dir, "--output", str(tmp_path / "ann"), "--config", str(config),
                            "--annotate-only"])
    assert annotated["output"] == annotated["input"]
    would = {k.split("/", 1)[1]: v for k, v in annotated["counts"].items() if k.startswith("would_remove/")}
    assert would == stats["removed"]  # annotate mode predicts exactly what the filter removes


def test_missing_input_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        stage.main(["--input", str(tmp_path / "nothing"), "--output", str(tmp_path / "out")])
    assert exc.value.code == 2 and capsys.readouterr().err.startswith("error: input")
