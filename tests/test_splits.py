"""Input splits: byte ranges and row-group ranges read every record once, in order, with the
line numbers of a whole-file read; outputs are named by split and identical on any runner."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.documents import DOC_SCHEMA
from pipelines import clean
from pipelines.io import Rejected
from pipelines.splits import ParquetParts, Split, enumerate_splits, iter_split_records, line_ranges


def _records(split_list):
    out = []
    for split in split_list:
        for line, rec in iter_split_records(split):
            out.append((line, rec.reason if isinstance(rec, Rejected) else rec["id"]))
    return out


@pytest.fixture()
def jsonl_file(tmp_path: Path, finance_docs) -> Path:
    lines = [json.dumps({"id": d["id"], "text": d["text"]}) for d in finance_docs[:40]]
    lines.insert(7, "{broken")
    lines.insert(20, "")
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("split_bytes", [1, 500, 4096, 10**9])
def test_byte_ranges_cover_every_line_once(jsonl_file, split_bytes):
    whole = _records([Split(str(jsonl_file), 0, 0, "whole")])
    splits = enumerate_splits(str(jsonl_file), 0, split_bytes)
    assert _records(splits) == whole
    assert [line for line, _ in whole] == list(range(1, 43))
    assert ("invalid_json" in {r for _, r in whole}) and ("blank_line" in {r for _, r in whole})
    if split_bytes < jsonl_file.stat().st_size:
        assert len(splits) > 1 and all(s.kind == "bytes" for s in splits)
        data = jsonl_file.read_bytes()
        for s in splits[1:]:
            assert data[s.start - 1:s.start] == b"\n"  # every split starts at a line


def test_line_ranges_without_final_newline(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "c", "text": "z"}')
    ranges = line_ranges(str(path), path.stat().st_size, 10)
    assert ranges[0][0] == 0 and ranges[-1][1] == path.stat().st_size
    assert [r[2] for r in ranges] == [1, 2, 3]


def test_parquet_row_group_splits(tmp_path, finance_docs):
    rows = [{"id": d["id"], "text": d["text"], "source": "s", "domain": "domain", "meta": "{}"}
            for d in finance_docs[:50]]
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), path, row_group_size=7)
    splits = enumerate_splits(str(path), 3, 20_000)
    assert len(splits) > 2 and all(s.kind == "row_groups" for s in splits)
    assert [s.name for s in splits][:2] == ["00003-0000", "00003-0001"]
    assert _records(splits) == [(i + 1, r["id"]) for i, r in enumerate(rows)]


def test_parts_roll_over_and_keep_order(tmp_path, finance_docs):
    split = Split("x", 1, 2, "whole")
    parts = ParquetParts(str(tmp_path), split, part_mb=0.01)
    rows = [{"id": d["id"], "text": d["text"], "source": "s", "domain": "domain", "meta": "{}"}
            for d in finance_docs[:30]]
    for r in rows:
        parts.write(r)
    assert parts.close() == 30
    files = sorted(glob.glob(str(tmp_path / "train-*.parquet")))
    assert len(files) > 1 and Path(files[0]).name == "train-00001-0002-000.parquet"
    assert pq.read_table(files).to_pylist() == rows


def test_clean_output_is_the_same_for_any_split_size_and_worker_count(jsonl_file, tmp_path):
    def run(out, *extra):
        stats = clean.main(["--input", str(jsonl_file), "--output", str(out), "--domain", "domain", *extra])
        table = pq.read_table(sorted(glob.glob(str(out / "train-*.parquet"))))
        rejected = [json.loads(line) for p in sorted(glob.glob(str(out / "rejected" / "*.jsonl")))
                    for line in open(p, encoding="utf-8")]
        return stats, table.to_pylist(), rejected

    whole = run(tmp_path / "whole")
    small = run(tmp_path / "small", "--split-mb", "0.004", "--part-mb", "0.01")
    multi = run(tmp_path / "multi", "--split-mb", "0.004", "--part-mb", "0.01", "--direct_running_mode",
                "multi_processing", "--direct_num_workers", "2")
    assert whole[0]["input"] == 42 and whole[0]["balanced"]
    assert whole[0]["removed"] == {"invalid_json": 1, "blank_line": 1}
    for stats, rows, rejected in (small, multi):
        assert (stats["input"], stats["output"], stats["removed"]) == \
            (whole[0]["input"], whole[0]["output"], whole[0]["removed"])
        assert rows == whole[1]  # input order, whatever the split size
        assert [(r["line"], r["reason"]) for r in rejected] == [(8, "invalid_json"), (21, "blank_line")]
    names = sorted(p.name for p in (tmp_path / "small").glob("train-*.parquet"))
    assert len(names) > 2
    assert names == sorted(p.name for p in (tmp_path / "multi").glob("train-*.parquet"))
    for name in names:
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "multi" / name).read_bytes()


def test_progress_lines_name_the_split_and_the_rate(jsonl_file, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="pipelines.splits"):
        clean.main(["--input", str(jsonl_file), "--output", str(tmp_path / "out"), "--domain", "domain",
                    "--split-mb", "0.004"])
    lines = [r.getMessage() for r in caplog.records if r.name == "pipelines.splits"]
    assert lines and "clean: 1 splits done on this worker (last 00000-0000, docs.jsonl)" in lines[0]
    assert "records/s" in lines[0]


@pytest.mark.parametrize("split_mb", ["64", "0.0005"])
def test_a_deeply_nested_line_costs_only_itself(tmp_path, finance_docs, split_mb):
    lines = [json.dumps({"id": d["id"], "text": d["text"]}) for d in finance_docs[:10]]
    lines.insert(3, "[" * 100_000 + "]" * 100_000)  # json.loads raises RecursionError
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = clean.main(["--input", str(path), "--output", str(tmp_path / "out"), "--domain", "domain",
                        "--split-mb", split_mb])
    assert stats["balanced"] and stats["input"] == 11 and stats["output"] == 10
    assert stats["removed"] == {"invalid_json": 1}
    rejected = [json.loads(x) for p in (tmp_path / "out" / "rejected").glob("*.jsonl") for x in open(p)]
    assert [(r["line"], r["reason"]) for r in rejected] == [(4, "invalid_json")]
