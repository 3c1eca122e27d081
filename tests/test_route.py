"""Domain harvesting in the filter stage: general documents a domain classifier scores high move to
the domain side (source kept, ``meta.routed_by`` recorded), counted as ``routed``, never removed."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.quality import train
from filters.rules import FilterConfig
from pipelines import filter as stage
from pipelines.documents import DOC_SCHEMA
from tests.conftest import DATA, ROOT, read_jsonl_gz

RULES_OFF = ("langid: {enabled: false}\ngopher_repetition: {enabled: false}\ngopher_quality: {enabled: false}\n"
             "c4: {enabled: false}\nfineweb: {enabled: false}\n")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A finance classifier trained on BBC business news vs every general file (the first 15
    documents of each), and a "crawl" of documents it never saw: Reuters finance stories and
    Wikipedia/Austen/Python-docs pages (after the first 15), all labelled general, plus Reuters
    stories already on the domain side."""
    root = tmp_path_factory.mktemp("route")
    model = str(root / "fin.bin")
    train([str(DATA / "finance" / "bbc_business.jsonl.gz")], [str(DATA / "general" / "*.jsonl.gz")],
          model, epoch=50, quantize=False, max_docs=15, holdout=0.0)
    reuters = read_jsonl_gz(DATA / "finance" / "reuters_finance.jsonl.gz")
    rows = [{"id": d["id"], "text": d["text"], "source": "crawl", "domain": "general", "meta": "{}"}
            for d in reuters[:20]]
    for name in ("wikipedia_en", "austen", "python_docs"):
        rows += [{"id": d["id"], "text": d["text"], "source": "crawl", "domain": "general", "meta": "{}"}
                 for d in read_jsonl_gz(DATA / "general" / f"{name}.jsonl.gz")[15:22]]
    rows += [{"id": d["id"], "text": d["text"], "source": "reuters", "domain": "domain", "meta": "{}"}
             for d in reuters[20:26]]
    (root / "clean").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), root / "clean" / "train-00000.parquet")
    return root, model, rows


def kept_rows(out) -> list[dict]:
    return [r for p in sorted(out.glob("train-*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_routed_documents_move_to_the_domain_side_and_stay_output(setup):
    root, model, rows = setup
    config = root / "route.yaml"
    config.write_text(RULES_OFF + f"route:\n  - {{name: fin, path: {model}, threshold: 0.5}}\n", encoding="utf-8")
    out = root / "out"
    stats = stage.main(["--input", str(root / "clean"), "--output", str(out), "--config", str(config)])
    assert stats["balanced"] and stats["output"] == stats["input"] == len(rows) and stats["removed"] == {}
    kept = {r["id"]: r for r in kept_rows(out)}
    moved = [r for r in kept.values() if json.loads(r["meta"]).get("routed_by")]
    assert stats["counts"]["routed"] == stats["counts"]["routed/fin"] == len(moved)
    assert stats["by_source"]["crawl"]["routed_to_domain"] == len(moved)
    for r in moved:
        by = json.loads(r["meta"])["routed_by"]
        assert r["domain"] == "domain" and r["source"] == "crawl"
        assert by["route"] == "fin" and by["from"] == "general"
        assert by["score"] >= 0.5 and abs(by["score"] - r["fin_score"]) < 1e-3
    finance = {r["id"] for r in rows if r["id"].startswith("reuters") and r["source"] == "crawl"}
    routed = {r["id"] for r in moved}
    assert len(routed & finance) >= 0.5 * len(finance)  # harvested (a classifier trained on BBC business news)
    assert len(routed - finance) <= 1  # general pages stay
    # documents already on the domain side are not scored, and keep their meta untouched
    for r in kept.values():
        if r["source"] == "reuters":
            assert r["fin_score"] is None and r["meta"] == "{}" and r["domain"] == "domain"
        elif r["id"] not in routed:
            assert r["domain"] == "general" and r["fin_score"] < 0.5 and "routed_by" not in r["meta"]


def test_routed_count_follows_the_top_fraction_cut(setup):
    """With a top-fraction classifier the kept set is known only after the cut: ``routed`` counts the
    routed documents that survive it, so it always equals the output documents that moved."""
    root, model, rows = setup
    config = root / "route_top.yaml"
    config.write_text(RULES_OFF + f"classifiers:\n  - {{name: top, path: {model}, top_fraction: 0.6}}\n"
                      f"route:\n  - {{name: fin, path: {model}, threshold: 0.5}}\n", encoding="utf-8")
    out = root / "out_top"
    stats = stage.main(["--input", str(root / "clean"), "--output", str(out), "--config", str(config)])
    assert stats["balanced"] and stats["removed"].get("classifier_top", 0) > 0
    moved = [r for r in kept_rows(out) if json.loads(r["meta"]).get("routed_by")]
    assert moved and stats["counts"]["routed"] == len(moved)


def test_route_config_is_checked():
    with pytest.raises(ValueError, match="to must be one of"):
        FilterConfig.from_dict({"route": [{"name": "fin", "path": "m.ftz", "threshold": 0.9, "to": "finance"}]})
    with pytest.raises(ValueError, match="unique"):
        FilterConfig.from_dict({"route": [{"name": "fin", "path": "m.ftz", "threshold": 0.9}],
                                "classifiers": [{"name": "fin", "path": "m.ftz", "threshold": 0.5}]})
    cfg = FilterConfig.from_dict({"route": [{"name": "fin", "path": "m.ftz", "threshold": 0.9, "sources": ["web"]}],
                                  "decontaminate": {"sets": [{"name": "qa", "path": "q.jsonl",
                                                              "fields": ["question"]}]}})
    assert FilterConfig.from_dict(cfg.to_dict()) == cfg  # what the workers rebuild from
    assert cfg.route[0].applies_to("web", "general") and not cfg.route[0].applies_to("web", "domain")
    assert not cfg.route[0].applies_to("news", "general")


def test_a_run_mixes_routed_documents_with_the_side_they_moved_to(tmp_path):
    """The run config's recipe gets one optional source per general source a route can move documents
    from: ``<source> (routed)`` on the domain side, reading ``tokens/domain/<source>``."""
    from pipelines import run

    cfg = run.load_run_config(ROOT / "configs" / "runs" / "demo.yaml")
    recipe = run.Runner(cfg).recipe()
    by_name = {s["name"]: s for s in recipe["sources"]}
    assert by_name["lee_news (routed)"] == {"name": "lee_news (routed)", "domain": "domain",
                                            "dir": "domain/lee_news", "optional": True}
    assert "reuters (routed)" not in by_name  # a domain source has nothing to move to its own side
    general = [s["name"] for s in cfg.sources if s["domain"] == "general"]
    assert {f"{n} (routed)" for n in general} == {n for n in by_name if n.endswith("(routed)")}
