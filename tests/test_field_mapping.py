"""--text-field / --id-field: JSON Lines and Parquet whose text is not under ``text`` (dotted paths for
nested JSON), and a source whose records have no text field at all refused before any work."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import clean
from pipelines.io import InputError, check_text_field, field_value, map_fields, sample_fields
from tests.conftest import ROOT, load_stage_dir_both_ways


def _nested(docs: list[dict]) -> list[dict]:
    """Real documents the way a news API ships them: the text and id inside an ``article`` object."""
    return [{"article": {"uid": f"a-{i}", "body": d["text"], "title": d["text"].split("\n", 1)[0][:80]},
             "lang": "en"} for i, d in enumerate(docs)]


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def _docs(out, cache):
    return sorted(load_stage_dir_both_ways(out, cache)[0], key=lambda d: d["id"])


def test_field_value_and_map_fields_follow_dotted_paths():
    record = {"article": {"body": "Bond yields rose.", "uid": 7, "title": "Bonds"}, "text": "stale teaser"}
    assert field_value(record, "article.body") == (True, "Bond yields rose.")
    assert field_value(record, "article.missing") == (False, None)
    mapped = map_fields(record, "article.body", "article.uid")
    assert mapped["text"] == "Bond yields rose." and mapped["id"] == 7
    assert mapped["article"] == {"title": "Bonds"}  # moved, not copied into meta a second time
    assert map_fields({"article": {"body": "x"}}, "article.body")["text"] == "x"
    assert "text" not in map_fields({"text": "a teaser", "body": None}, "headline")  # no such field: no text
    assert map_fields({"a.b": "literal key"}, "a.b")["text"] == "literal key"  # a key with a dot wins


def test_clean_maps_nested_jsonl_fields(tmp_path, finance_docs):
    docs = finance_docs[:12]
    _write_jsonl(tmp_path / "news.jsonl", _nested(docs))
    stats = clean.main(["--input", str(tmp_path / "news.jsonl"), "--output", str(tmp_path / "out"),
                        "--source", "news", "--domain", "domain", "--no-pii",
                        "--text-field", "article.body", "--id-field", "article.uid"])
    assert stats["input"] == len(docs) and stats["output"] == len(docs) and stats["removed"] == {}
    got = _docs(tmp_path / "out", tmp_path / "cache")
    assert [d["id"] for d in got] == sorted(f"a-{i}" for i in range(len(docs)))
    by_id = {d["id"]: d for d in got}
    # the text is the article body (cleaned: the same words), and the rest of the record stays in meta
    first = by_id["a-0"]
    assert first["text"].split() == docs[0]["text"].split()
    meta = json.loads(first["meta"])
    assert meta["lang"] == "en" and meta["article"] == {"title": docs[0]["text"].split("\n", 1)[0][:80]}


def test_clean_maps_parquet_columns_and_hf_alias_still_works(tmp_path, finance_docs):
    docs = finance_docs[:8]
    table = pa.table({"doc_id": [f"p{i}" for i in range(len(docs))], "body": [d["text"] for d in docs]})
    pq.write_table(table, tmp_path / "filings.parquet")
    stats = clean.main(["--input", str(tmp_path / "filings.parquet"), "--output", str(tmp_path / "out"),
                        "--source", "pq", "--domain", "domain", "--no-pii",
                        "--hf-text-field", "body", "--id-field", "doc_id"])  # the old spelling is an alias
    assert stats["output"] == len(docs) and stats["removed"] == {}
    got = _docs(tmp_path / "out", tmp_path / "cache")
    assert [d["id"] for d in got] == sorted(f"p{i}" for i in range(len(docs)))
    assert got[0]["text"].split() == docs[0]["text"].split()


def test_records_without_the_field_are_rejected_one_by_one(tmp_path, finance_docs):
    """Some records lack the mapped field: each is `missing_text`, the others are kept; stats balance."""
    records = _nested(finance_docs[:5]) + [{"article": {"uid": "no-body"}}]
    _write_jsonl(tmp_path / "a.jsonl", records)
    stats = clean.main(["--input", str(tmp_path / "a.jsonl"), "--output", str(tmp_path / "out"),
                        "--source", "news", "--domain", "domain", "--no-pii", "--text-field", "article.body"])
    assert stats["output"] == 5 and stats["removed"] == {"missing_text": 1} and stats["balanced"]


def test_sample_names_the_fields_seen(tmp_path, finance_docs):
    records = [{"id": f"d{i}", "body": d["text"], "title": "t"} for i, d in enumerate(finance_docs[:3])]
    _write_jsonl(tmp_path / "a.jsonl", records)
    assert sample_fields([str(tmp_path / "a.jsonl")]) == (3, 0, ["id", "body", "title"])
    assert sample_fields([str(tmp_path / "a.jsonl")], "body")[:2] == (3, 3)
    with pytest.raises(InputError, match=r'^0 of 3 records have "text"; fields seen: id, body, title$'):
        check_text_field([str(tmp_path / "a.jsonl")])
    check_text_field([str(tmp_path / "a.jsonl")], "body")  # mapped: fine
    (tmp_path / "page.txt").write_text(finance_docs[0]["text"], encoding="utf-8")
    check_text_field([str(tmp_path / "page.txt")])  # text files have no fields: nothing to check


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_source_without_the_text_field_fails_before_any_work(tmp_path, finance_docs, fmt):
    """The issue's case: text under ``body``. One line, exit 2, no output directory; not a stage that
    drops every document as missing_text and leaves the next stage with `matches no files`."""
    records = [{"id": f"d{i}", "body": d["text"], "title": d["text"][:40]} for i, d in enumerate(finance_docs)]
    records = (records * (120 // len(records) + 1))[:120]
    path = tmp_path / f"body.{fmt}"
    if fmt == "jsonl":
        _write_jsonl(path, records)
    else:
        pq.write_table(pa.Table.from_pylist(records), path)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pipelines.clean", "--input", str(path), "--output", str(out),
                           "--domain", "domain"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.splitlines() == ['error: 0 of 100 records have "text"; fields seen: id, body, title']
    assert not out.exists()


def test_a_local_hf_dataset_without_the_text_field_fails_before_any_work(tmp_path, general_docs, capsys):
    import datasets

    datasets.Dataset.from_list([{"doc_id": d["id"], "content": d["text"]} for d in general_docs[:7]]
                               ).save_to_disk(str(tmp_path / "hf"))
    argv = ["--hf-dataset", str(tmp_path / "hf"), "--source", "web", "--domain", "general",
            "--output", str(tmp_path / "out")]
    capsys.readouterr()  # datasets' progress bars
    with pytest.raises(SystemExit) as exit_:
        clean.main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == ['error: 0 of 7 records have "text"; fields seen: doc_id, content']
    assert not (tmp_path / "out").exists()
    stats = clean.main([*argv, "--text-field", "content", "--id-field", "doc_id"])
    assert stats["output"] == 7 and stats["removed"] == {}
