"""The clean stage end to end: every bad record accounted for, any filesystem, any runner mode."""

from __future__ import annotations

import glob
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zstandard
from apache_beam.io.filesystem import FileMetadata, MatchResult
from apache_beam.io.localfilesystem import LocalFileSystem

from pipelines import clean
from tests.conftest import ROOT, load_stage_dir_both_ways, warc_record


def _jsonl(docs) -> bytes:
    return "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode()


@pytest.fixture()
def messy_inputs(tmp_path: Path, finance_docs):
    """Real documents mixed with one of each kind of bad record; returns (glob, expected counts)."""
    good = finance_docs[:6]
    lines = [
        _jsonl(good[:2]),
        b"{not json at all\n",                                           # invalid_json
        b'["a", "list"]\n',                                              # not_an_object
        _jsonl([{"id": "no-text", "meta": {}}]),                         # missing_text
        _jsonl([{"id": "num", "text": 42}]),                             # text_not_string
        b'{"id": "latin1", "text": "caf\xe9"}\n',                        # invalid_utf8
        b"\n",                                                           # blank_line
        _jsonl([{"id": "spaces", "text": " \u00a0\t\x00 \n\n "}]),      # empty_after_clean
        _jsonl([{"id": "big", "text": good[2]["text"] * 60}]),          # oversized (limit below)
        _jsonl([{"id": "moji", "text": "CafÃ© owners in ZÃ¼rich report record sales."}]),
    ]
    (tmp_path / "mixed.jsonl").write_bytes(b"".join(lines))
    # A gzip file cut in the middle: the records before the cut survive, the rest is one rejection.
    full = gzip.compress(_jsonl(good[2:5] * 40))
    (tmp_path / "truncated.jsonl.gz").write_bytes(full[: len(full) // 2])
    # Zstandard: one valid file and one that is not zstd at all.
    (tmp_path / "good.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(_jsonl(good[3:6])))
    (tmp_path / "corrupt.jsonl.zst").write_bytes(b"definitely not a zstd frame" * 10)
    # One document per plain-text file and per HTML file.
    (tmp_path / "note.txt").write_text(good[5]["text"], encoding="utf-8")
    html = ("<!DOCTYPE html><html><head><title>t</title></head><body><article>"
            + "".join(f"<p>{p}</p>" for p in good[0]["text"].split("\n") if p.strip())
            + "</article></body></html>")
    (tmp_path / "page.html").write_text(html, encoding="utf-8")
    return tmp_path


def run_clean(inputs, out, *extra):
    return clean.main(["--input", *inputs, "--output", str(out), "--source", "reuters", "--domain", "domain",
                       "--max-text-bytes", "20000", *extra])


def test_every_bad_record_has_a_reason_and_stats_balance(messy_inputs, tmp_path):
    out = tmp_path / "out"
    stats = run_clean([str(messy_inputs / "*")], out)
    truncated_ok = sum(1 for _ in _readable_lines(messy_inputs / "truncated.jsonl.gz"))
    assert stats["removed"] == {
        "invalid_json": 1, "not_an_object": 1, "missing_text": 1, "text_not_string": 1,
        "invalid_utf8": 1, "blank_line": 1, "empty_after_clean": 1, "oversized": 1,
        "unreadable_file": 2,  # the truncated gzip and the corrupt zstd
    }
    # mixed.jsonl: 2 good + moji; truncated: the complete lines; zst: 3; txt: 1; html: 1
    assert stats["output"] == 3 + truncated_ok + 3 + 1 + 1
    assert stats["input"] == stats["output"] + sum(stats["removed"].values())
    assert stats["balanced"] is True
    assert json.loads((out / "stats.json").read_text())["input"] == stats["input"]
    # Beam Metrics counters carry the same numbers.
    assert stats["metrics"]["input"] == stats["input"] and stats["metrics"]["output"] == stats["output"]
    assert stats["metrics"]["removed/invalid_json"] == 1

    rejected = [json.loads(line) for f in sorted(glob.glob(str(out / "rejected" / "*.jsonl")))
                for line in open(f, encoding="utf-8")]
    assert len(rejected) == sum(stats["removed"].values())
    for rec in rejected:
        assert set(rec) - {"source"} == {"reason", "file", "line", "raw"} and len(rec["raw"].encode()) <= 1024 * 4
        # the source is known once the line parsed as a JSON object (here: --source reuters)
        unparsed = rec["reason"] in ("invalid_json", "not_an_object", "invalid_utf8", "blank_line", "unreadable_file")
        assert rec.get("source") == (None if unparsed else "reuters"), rec
    # with --source every record is the source's: its funnel is the whole stage's
    assert stats["by_source"] == {"reuters": {"input": stats["input"], "output": stats["output"],
                                              "removed": stats["removed"]}}
    by_reason = {r["reason"]: r for r in rejected}
    assert by_reason["invalid_json"]["line"] == 3 and by_reason["invalid_json"]["file"].endswith("mixed.jsonl")
    assert by_reason["oversized"]["raw"] and len(by_reason["oversized"]["raw"]) <= 1024

    table = pq.read_table(sorted(glob.glob(str(out / "train-*.parquet"))))
    assert table.column_names == ["id", "text", "source", "domain", "meta"]
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows["moji"]["text"] == "Cafe owners in Zürich report record sales.".replace("Cafe", "Café")
    assert "page.html" in rows and "note.txt" in rows  # one document per file, named after it
    assert "<p>" not in rows["page.html"]["text"] and len(rows["page.html"]["text"]) > 200
    assert all(r["source"] == "reuters" and r["domain"] == "domain" for r in rows.values())
    assert all(isinstance(json.loads(r["meta"]), dict) for r in rows.values())


def _readable_lines(path):
    try:
        with gzip.open(path, "rb") as f:
            yield from f
    except EOFError:
        return


def test_outputs_load_with_datasets(messy_inputs, tmp_path):
    import datasets

    out = tmp_path / "out"
    stats = run_clean([str(messy_inputs / "*.zst")], out)
    ds = datasets.load_dataset("parquet", data_files=sorted(glob.glob(str(out / "train-*.parquet"))),
                               split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == stats["output"] == 3
    assert set(ds.column_names) == {"id", "text", "source", "domain", "meta"}


def test_parquet_input_rows_are_counted(tmp_path, finance_docs):
    import pyarrow as pa

    rows = [{"id": d["id"], "text": d["text"]} for d in finance_docs[:5]] + [{"id": "null", "text": None}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    stats = run_clean([str(tmp_path / "in.parquet")], tmp_path / "out")
    assert stats["input"] == 6 and stats["output"] == 5 and stats["removed"] == {"missing_text": 1}


def test_same_bytes_in_memory_and_multi_processing(tmp_path):
    inputs = [str(ROOT / "data/finance/reuters_finance.jsonl.gz"), str(ROOT / "data/finance/sec_10q_aapl.jsonl.gz")]
    a = run_clean(inputs, tmp_path / "a")
    b = run_clean(inputs, tmp_path / "b", "--direct_num_workers", "2", "--direct_running_mode", "multi_processing")
    assert a["input"] == b["input"] == 117 and a["output"] == b["output"] == 116  # one 10-Q note > 20 KB
    files_a = sorted(p.name for p in (tmp_path / "a").glob("train-*.parquet"))
    assert files_a == sorted(p.name for p in (tmp_path / "b").glob("train-*.parquet"))
    for name in files_a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


class PrefixFileSystem(LocalFileSystem):
    """A ``testfs://`` filesystem over a local folder: proves every path goes through FileSystems,
    the way ``gs://`` paths do on Dataflow."""

    ROOT = ""

    @classmethod
    def scheme(cls):
        return "testfs"

    def _local(self, path):
        # LocalFileSystem's own helpers call back with local paths: pass those through.
        return os.path.join(self.ROOT, path[len("testfs://"):]) if path.startswith("testfs://") else path

    def _remote(self, local):
        return "testfs://" + os.path.relpath(local, self.ROOT)

    def join(self, base, *paths):
        return "/".join([base.rstrip("/"), *paths])

    def split(self, path):
        head, _, tail = path.rpartition("/")
        return head, tail

    def mkdirs(self, path):
        os.makedirs(self._local(path), exist_ok=True)

    def has_dirs(self):
        return True

    def match(self, patterns, limits=None):
        results = super().match([self._local(p) for p in patterns], limits)
        return [MatchResult(p, [FileMetadata(self._remote(m.path), m.size_in_bytes, m.last_updated_in_seconds)
                                for m in r.metadata_list]) for p, r in zip(patterns, results)]

    def create(self, path, *args, **kwargs):
        return super().create(self._local(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        return super().open(self._local(path), *args, **kwargs)

    def exists(self, path):
        return super().exists(self._local(path))

    def delete(self, paths):
        return super().delete([self._local(p) for p in paths])

    def rename(self, sources, destinations):
        return super().rename([self._local(p) for p in sources], [self._local(p) for p in destinations])


def test_remote_scheme_paths_go_through_beam_filesystems(tmp_path):
    PrefixFileSystem.ROOT = str(tmp_path)
    (tmp_path / "bucket").mkdir()
    sample = (ROOT / "data/finance/reuters_finance.jsonl.gz").read_bytes()
    (tmp_path / "bucket" / "reuters.jsonl.gz").write_bytes(sample)
    stats = run_clean(["testfs://bucket/*.jsonl.gz"], "testfs://bucket/clean")
    assert stats["input"] == stats["output"] == 80
    assert (tmp_path / "bucket" / "clean" / "stats.json").exists()
    assert [p.name for p in (tmp_path / "bucket" / "clean").glob("train-*.parquet")] == ["train-00000-0000-000.parquet"]
    # a stage "directory" on an object store is a prefix: it means its part files
    from pipelines.io import expand_inputs
    assert expand_inputs(["testfs://bucket/clean"]) == ["testfs://bucket/clean/train-00000-0000-000.parquet"]


def test_hugging_face_dataset_from_local_directory(tmp_path, general_docs):
    import datasets

    docs = general_docs[:12]
    ds = datasets.Dataset.from_list([{"doc_id": d["id"], "content": d["text"]} for d in docs]
                                    + [{"doc_id": "empty", "content": None}])
    ds.save_to_disk(str(tmp_path / "hf"))
    stats = clean.main(["--hf-dataset", str(tmp_path / "hf"), "--hf-text-field", "content",
                        "--hf-id-field", "doc_id", "--hf-shards", "3", "--source", "bbc", "--domain", "general",
                        "--output", str(tmp_path / "out")])
    assert stats["input"] == 13 and stats["output"] == 12 and stats["removed"] == {"missing_text": 1}
    ids = set(pq.read_table(sorted(glob.glob(str(tmp_path / "out" / "train-*.parquet")))).column("id").to_pylist())
    assert ids == {d["id"] for d in docs}


@pytest.mark.parametrize("argv, message", [
    (["--input", "/no/such/dir/*.jsonl", "--domain", "general"], "matches no files"),
    (["--input", "README.md", "--domain", "finance"], "invalid choice"),
    (["--input", "pyproject.toml", "--domain", "general"], "unsupported input file"),
])
def test_bad_paths_and_options_exit_non_zero_with_a_clear_message(tmp_path, argv, message):
    proc = subprocess.run([sys.executable, "-m", "pipelines.clean", *argv, "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_warc_responses_are_records_and_html_is_extracted(tmp_path, finance_docs):
    body = ("<!DOCTYPE html><html><head><title>Wire</title></head><body><article>"
            + "".join(f"<p>{p}</p>" for p in finance_docs[1]["text"].split("\n") if p.strip())
            + "</article></body></html>").encode()
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + body
    warc = b"".join([
        warc_record("request", "http://example.com/a", b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n"),
        warc_record("response", "http://example.com/a", ok),
        warc_record("response", "http://example.com/missing",
                     b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\r\nno"),
        warc_record("response", "http://example.com/f.pdf",
                     b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n\r\n%PDF"),
    ])
    (tmp_path / "crawl.warc.gz").write_bytes(warc)
    stats = run_clean([str(tmp_path / "crawl.warc.gz")], tmp_path / "out")
    assert stats["input"] == 3  # responses only: the request record is not a document
    assert stats["removed"] == {"warc_http_error": 1, "warc_not_html": 1} and stats["output"] == 1
    row = pq.read_table(sorted(glob.glob(str(tmp_path / "out" / "train-*.parquet")))).to_pylist()[0]
    first_sentence = finance_docs[1]["text"].split("\n")[-1][:60]
    assert first_sentence in row["text"] and "<p>" not in row["text"]
    assert json.loads(row["meta"])["url"] == "http://example.com/a"


def test_load_dataset_on_the_stage_directory_gives_the_kept_documents(messy_inputs, tmp_path):
    out = tmp_path / "out"
    stats = run_clean([str(messy_inputs / "*")], out)
    assert list((out / "rejected").glob("*.jsonl"))  # side records sit next to the kept parts
    kept = pq.read_table(sorted(out.glob("train-*.parquet"))).column("id").to_pylist()
    for ds in load_stage_dir_both_ways(out, tmp_path / "hf_cache"):
        assert ds.column_names == ["id", "text", "source", "domain", "meta"]
        assert ds["id"] == kept and len(ds) == stats["output"]


def test_pii_is_redacted_by_default_and_counted(tmp_path, finance_docs):
    text = finance_docs[0]["text"]
    docs = [{"id": "a", "text": text + "\n\nContact the desk at jane.doe@example.com or +44 20 7946 0958."},
            {"id": "b", "text": text}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")

    def kept(out):
        return {r["id"]: r["text"] for r in pq.read_table(sorted(out.glob("train-*.parquet"))).to_pylist()}

    stats = clean.main(["--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "on"), "--domain", "domain"])
    rows = kept(tmp_path / "on")
    assert "<EMAIL>" in rows["a"] and "<PHONE>" in rows["a"] and "jane.doe" not in rows["a"]
    assert stats["counts"]["pii_documents"] == 1
    assert stats["counts"]["pii_spans/email"] == 1 and stats["counts"]["pii_spans/phone"] == 1

    clean.main(["--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "off"), "--domain", "domain",
                "--no-pii"])
    assert "jane.doe@example.com" in kept(tmp_path / "off")["a"]
    assert rows["b"] == kept(tmp_path / "off")["b"]  # a real Reuters story: nothing in it is taken for PII
    email_only = clean.main(["--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "email"),
                             "--domain", "domain", "--pii-kinds", "email"])
    assert "pii_spans/phone" not in email_only["counts"] and "+44 20 7946 0958" in kept(tmp_path / "email")["a"]


# ---------------------------------------------------------------------------- EDGAR filings (issue 20)

def _kept_rows(out):
    return pq.read_table(sorted(glob.glob(str(out / "train-*.parquet")))).to_pylist()


def test_edgar_submission_and_filing_pages_are_auto_detected(tmp_path):
    from tests.test_edgar import FILING, SUBMISSION

    (tmp_path / "0001193125-19-292676.txt").write_text(SUBMISSION, encoding="utf-8")
    (tmp_path / "aapl-20240629.htm").write_text(FILING, encoding="utf-8")
    out = tmp_path / "out"
    stats = run_clean([str(tmp_path / "*")], out)
    assert stats["balanced"] and stats["input"] == 7  # 6 documents of the submission + the page
    assert stats["removed"] == {"edgar_not_text:archive": 1, "edgar_not_text:graphic": 1,
                                "edgar_not_text:xbrl": 1, "edgar_not_text:xbrl_viewer": 1}
    rows = {r["id"]: r for r in _kept_rows(out)}
    assert set(rows) == {"0001193125-19-292676:1", "0001193125-19-292676:4", "aapl-20240629.htm"}
    meta = json.loads(rows["0001193125-19-292676:1"]["meta"])
    assert {k: meta[k] for k in ("form_type", "company", "cik", "period", "filing_date", "accession_number",
                                 "type", "format")} == {
        "form_type": "8-K", "company": "Apple Inc.", "cik": "0000320193", "period": "2019-11-07",
        "filing_date": "2019-11-15", "accession_number": "0001193125-19-292676", "type": "8-K", "format": "edgar"}
    assert json.loads(rows["0001193125-19-292676:4"]["meta"])["type"] == "EX-5.1"
    page = rows["aapl-20240629.htm"]
    assert "Cash and cash equivalents | $ 25,565 | $ 29,965" in page["text"] and "P1Y" not in page["text"]
    assert json.loads(page["meta"])["form_type"] == "10-Q"
    rejected = [json.loads(line) for f in sorted(glob.glob(str(out / "rejected" / "*.jsonl")))
                for line in open(f, encoding="utf-8")]
    graphic = next(r for r in rejected if r["reason"] == "edgar_not_text:graphic")
    assert graphic["raw"].startswith("begin 644") and graphic["line"] > 1


def test_edgar_over_the_size_limit_is_split_into_parts_never_dropped(tmp_path):
    from tests.test_edgar import FILING, page

    items = "".join(page(k, f"Item {k}. Risk Factors. The Company's operations and performance depend significantly "
                            f"on global and regional economic conditions, {k}.") for k in range(5, 60))
    filing = FILING.replace("</body>", items + "</body>")  # ~9 KB of text, ~20 KB of HTML
    (tmp_path / "filing.htm").write_text(filing, encoding="utf-8")
    whole = run_clean([str(tmp_path / "filing.htm")], tmp_path / "whole")
    assert whole["output"] == 1 and not whole["removed"]  # raw HTML over the limit is fine: text is under it
    stats = clean.main(["--input", str(tmp_path / "filing.htm"), "--output", str(tmp_path / "out"), "--domain",
                        "domain", "--format", "edgar", "--max-text-bytes", "1000"])
    rows = _kept_rows(tmp_path / "out")
    assert all(r["text"].startswith("Item ") for r in rows[1:])  # cut at Item headings
    assert len(rows) > 2 and stats["balanced"] and not stats["removed"]
    assert stats["input"] == stats["output"] == len(rows) and stats["counts"]["edgar_extra_parts"] == len(rows) - 1
    metas = [json.loads(r["meta"]) for r in rows]
    assert [m["part"] for m in metas] == list(range(1, len(rows) + 1)) and {m["parts"] for m in metas} == {len(rows)}
    assert all(len(r["text"].encode()) <= 1000 for r in rows)
    assert "\n".join(r["text"] for r in rows) == _kept_rows(tmp_path / "whole")[0]["text"]


def test_web_page_fallback_is_counted(tmp_path, monkeypatch):
    import filters.html

    rows = "".join(f"<tr><td>Segment {k}</td><td>$</td><td>{k},104</td></tr>" for k in range(30))
    (tmp_path / "ir.html").write_text("<html><body><p>Investor relations.</p><table>" + rows + "</table></body>"
                                      "</html>", encoding="utf-8")
    monkeypatch.setattr(filters.html, "_main_text", lambda html, extractor: "")  # as trafilatura on such pages
    stats = run_clean([str(tmp_path / "ir.html")], tmp_path / "out")
    assert stats["output"] == 1 and stats["counts"]["html_fulltext_fallback"] == 1
    assert "Segment 7 | $ 7,104" in _kept_rows(tmp_path / "out")[0]["text"]
