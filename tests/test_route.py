"""Domain harvesting in the filter stage: general documents a domain classifier scores high move to
the domain side (source kept, ``meta.routed_by`` recorded), counted as ``routed``, never removed."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.documents import DOC_SCHEMA
from filters.quality import train
from filters.rules import FilterConfig
from pipelines import filter as stage
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
    from run import orchestrator as run

    cfg = run.load_run_config(ROOT / "configs" / "runs" / "demo.yaml")
    recipe = run.Runner(cfg).recipe()
    by_name = {s["name"]: s for s in recipe["sources"]}
    assert by_name["lee_news (routed)"] == {"name": "lee_news (routed)", "domain": "domain",
                                            "dir": "domain/lee_news", "optional": True}
    assert "reuters (routed)" not in by_name  # a domain source has nothing to move to its own side
    general = [s["name"] for s in cfg.sources if s["domain"] == "general"]
    assert {f"{n} (routed)" for n in general} == {n for n in by_name if n.endswith("(routed)")}


# ---------------------------------------------------------------- the bundled router: `--route finance` (issue 20)


def test_route_finance_shorthand_means_the_bundled_model_at_its_shipped_threshold():
    from filters.quality import BUNDLED

    shipped = BUNDLED["finance"]
    for raw in ("finance", ["finance"], [{"name": "finance"}]):
        (route,) = FilterConfig.from_dict({"route": raw}).route
        assert (route.name, route.path, route.threshold, route.to) == ("finance", shipped.path, shipped.threshold,
                                                                       "domain")
    (tuned,) = FilterConfig.from_dict({"route": [{"name": "finance", "threshold": 0.95, "sources": ["web"]}]}).route
    assert tuned.path == shipped.path and tuned.threshold == 0.95 and tuned.sources == ("web",)
    cfg = FilterConfig.from_dict({"route": "finance"})
    assert FilterConfig.from_dict(cfg.to_dict()) == cfg  # what the workers rebuild from
    with pytest.raises(ValueError, match="bundled routes"):
        FilterConfig.from_dict({"route": "medicine"})


def test_bundled_finance_model_is_small_and_matches_its_checksum():
    import hashlib

    from filters.quality import BUNDLED

    path = ROOT / BUNDLED["finance"].path
    assert path.stat().st_size < 3_000_000  # quantized .ftz
    sums = dict(reversed(line.split("  ", 1)) for line in (ROOT / "filters" / "models" / "SHA256SUMS").read_text()
                .splitlines() if line.strip())
    assert sums[BUNDLED["finance"].path] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_route_finance_routes_unseen_finance_text_and_leaves_general_text(tmp_path):
    """``--route finance`` with the bundled model, on text of data/ (left out of its training set): Reuters
    finance stories and a 10-Q note move to the domain side, Wikipedia/Austen/Python-docs pages stay."""
    rows = []
    for name, n in (("finance/reuters_finance", 10), ("finance/sec_10q_aapl", 6), ("general/wikipedia_en", 4),
                    ("general/austen", 4), ("general/python_docs", 4), ("general/speeches", 4)):
        rows += [{"id": d["id"], "text": d["text"], "source": "crawl", "domain": "general", "meta": "{}"}
                 for d in read_jsonl_gz(DATA / f"{name}.jsonl.gz")[:n]]
    (tmp_path / "clean").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), tmp_path / "clean" / "train-00000.parquet")
    config = tmp_path / "off.yaml"
    config.write_text(RULES_OFF, encoding="utf-8")
    out = tmp_path / "out"
    stats = stage.main(["--input", str(tmp_path / "clean"), "--output", str(out), "--config", str(config),
                        "--route", "finance"])
    assert stats["balanced"] and stats["output"] == len(rows)
    routed = {r["id"] for r in kept_rows(out) if json.loads(r["meta"]).get("routed_by", {}).get("route") == "finance"}
    finance = {r["id"] for r in rows[:16]}
    assert len(routed & finance) >= 0.8 * len(finance), routed
    assert not routed - finance  # no general page moves
    assert stats["counts"]["routed/finance"] == len(routed)


def test_cli_route_rejects_an_unknown_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        stage.main(["--input", str(tmp_path), "--output", str(tmp_path / "o"), "--route", "medicine"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_training_set_build_leaves_out_reserved_filers():
    """benchmarks/build_finance_train.py: filings of the companies whose filings dgunning/edgartools ships (issue
    20's reserved list) are matched by CIK, ticker or filer name, never by body text."""
    from benchmarks.build_finance_train import reserved_filer

    assert reserved_filer(ciks=["0001045810"]) == "NVIDIA"
    assert reserved_filer(ciks=["0000950170", "1341439"]) == "Oracle"  # filing agent's accession prefix, then CIK
    assert reserved_filer(tickers=["aapl"]) == "Apple"
    assert reserved_filer(names=["PG&E CORP"]) == "PG&E / Pacific Gas and Electric"
    assert reserved_filer(names=["DELAWARE GROUP EQUITY FUNDS IV"]) == "Delaware funds (485BPOS)"
    assert reserved_filer(ciks=["0000018230"], names=["CATERPILLAR INC", "a Delaware corporation"]) is None
    assert reserved_filer(names=["SOUTHERN CO", "GEORGIA POWER CO"], tickers=["SO"]) is None


def _write_jsonl_gz(path, recs):
    import gzip

    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")


def test_training_set_leak_check_flags_a_copy_not_shared_boilerplate(tmp_path):
    """The build's leak check: a training document that copies an evaluation document fails it; text that two
    training groups share (form language) does not count; unrelated text shares nothing."""
    from benchmarks.build_finance_train import LEAK_MAX_SHARE, leak_check

    bbc = read_jsonl_gz(DATA / "finance" / "bbc_business.jsonl.gz")
    wiki = read_jsonl_gz(DATA / "general" / "wikipedia_en.jsonl.gz")
    evaluation, other, boiler = bbc[0]["text"], bbc[1]["text"], bbc[2]["text"]
    _write_jsonl_gz(tmp_path / "realworld" / "fin_x.jsonl.gz", [{"id": "e1", "text": evaluation + "\n" + boiler}])
    clean = [{"id": "a", "group": "a", "source": "s", "text": other},
             {"id": "b", "group": "b", "source": "s", "text": wiki[0]["text"] + "\n" + boiler},
             {"id": "c", "group": "c", "source": "s", "text": wiki[1]["text"] + "\n" + boiler}]
    _write_jsonl_gz(tmp_path / "ok" / "pos" / "x.jsonl.gz", clean)
    ok = leak_check(tmp_path / "ok", tmp_path / "realworld")
    assert ok["ok"] and ok["max_share"] <= LEAK_MAX_SHARE < ok["max_raw_share"], ok
    _write_jsonl_gz(tmp_path / "leak" / "pos" / "x.jsonl.gz", [*clean, {"id": "d", "group": "d", "source": "s",
                                                                        "text": evaluation}])
    leak = leak_check(tmp_path / "leak", tmp_path / "realworld")
    assert not leak["ok"] and leak["top"][0]["doc"] == "pos/d" and leak["max_share"] > 0.9, leak
    assert not leak_check(tmp_path / "ok", tmp_path / "missing")["checked"]
