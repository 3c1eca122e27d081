"""The filter stage end to end on real documents: accounting, outputs, modes, report."""

from __future__ import annotations

import glob
import gzip
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

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


# ------------------------------------------------------------------ one per-source override: the run config's

DEMO_FILTER = os.path.join(os.path.dirname(DATA), "configs", "filter", "demo.yaml")
SHORT_BRIEFS = {"reuters21578-128", "reuters21578-134", "reuters21578-162", "reuters21578-185"}  # 34-47 words


def test_a_domain_sources_run_config_override_changes_what_is_removed(tmp_path):
    """The one per-source override is the run config's ``sources[].filter``: the orchestrator hands the stage
    the filter file with the override on top, and on top of the finance profile its domain documents get.
    On 30 real Reuters stories of a domain source, ``gopher_quality: {min_doc_words: 20}`` keeps exactly the
    four short briefs the demo's rules remove for their length, and removes nothing new."""
    from run.orchestrator import RunConfig, _filter_config

    with gzip.open(os.path.join(DATA, "finance", "reuters_finance.jsonl.gz"), "rt", encoding="utf-8") as f:
        recs = [json.loads(line) for line in list(f)[:30]]
    rows = [{"id": r["id"], "text": r["text"], "source": "reuters", "domain": "domain", "meta": "{}"} for r in recs]
    clean = tmp_path / "clean"
    clean.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), clean / "train-00000-of-00001.parquet")
    source = {"name": "reuters", "domain": "domain", "filter": {"gopher_quality": {"min_doc_words": 20}}}
    cfg = RunConfig(tmp_path / "run.yaml", tmp_path / "work", [], [source], {"filter": {"config": DEMO_FILTER}})
    removed, written = {}, {}
    for name, s in (("base", {k: v for k, v in source.items() if k != "filter"}), ("override", source)):
        config, out = tmp_path / f"{name}.yaml", str(tmp_path / name)
        config.write_text(yaml.safe_dump(_filter_config(cfg, s), sort_keys=True), encoding="utf-8")
        assert stage.main(["--input", str(clean), "--output", out, "--config", str(config)])["balanced"]
        removed[name] = {r["id"]: r["reason"] for r in read_removed(out)}
        written[name] = json.load(open(os.path.join(out, "filter_config.json")))["config"]
    assert set(removed["base"]) - set(removed["override"]) == SHORT_BRIEFS
    assert {removed["base"][i] for i in SHORT_BRIEFS} == {"gopher_word_count"}
    assert set(removed["override"]) < set(removed["base"])  # nothing new removed
    domain = written["override"]["domains"]["domain"]  # what the workers judged the documents with
    assert domain["gopher_quality"]["min_doc_words"] == 20 and domain["tables"]["enabled"]
    assert written["base"]["domains"]["domain"]["gopher_quality"]["min_doc_words"] == 50
    assert "sources" not in written["override"] and "sources" not in written["override"]["langid"]


def per_source_config(tmp_path, section: str) -> str:
    """The demo filter config with the per-source settings it used to have (``sources:`` or ``langid.sources``)."""
    text, lang = open(DEMO_FILTER, encoding="utf-8").read(), "langid:\n  default: {languages: [en], min_score: 0.65}\n"
    assert text.count(lang) == 1
    if section == "sources":
        text += "sources:\n  sec_10q: {gopher_quality: {min_doc_words: 20}}\n"
    else:
        text = text.replace(lang, lang + "  sources: {python_docs: {languages: [en], min_score: 0.4}}\n")
    path = tmp_path / "old.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("section", ["sources", "langid"])
def test_a_filter_config_with_per_source_settings_is_one_error_line_exit_2(clean_dir, tmp_path, capsys, section):
    config, out = per_source_config(tmp_path, section), tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        stage.main(["--input", clean_dir, "--output", str(out), "--config", config])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and not out.exists()
    where = "filter config sources:" if section == "sources" else "filter config langid.sources:"
    assert err.count("\n") == 1 and err.startswith(f"error: {where}"), err
    assert "run config's sources[].filter" in err and "--sources FILE with one --config per source" in err
    # in a --sources file: the same line, naming the entry
    entries = tmp_path / "sources.yaml"
    entries.write_text(yaml.safe_dump([{"input": clean_dir, "output": str(out), "config": config}]), encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        stage.main(["--sources", str(entries)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and not out.exists()
    assert err.count("\n") == 1 and f"sources[0] (out): {where}" in err, err


def test_the_run_refuses_a_filter_config_with_per_source_settings(tmp_path, capsys):
    """``python -m run`` checks its filter config before step 1: the same line, exit 2, no work directory."""
    from tests.test_run_validation import config, refused

    old = per_source_config(tmp_path, "sources")
    config(tmp_path, lambda doc: doc["filter"].update(config=old))
    (line,) = refused(tmp_path, capsys)
    assert f"filter.config {old}: filter config sources: per-source settings" in line and "sources[].filter" in line
