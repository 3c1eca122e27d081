"""Property tests (hypothesis) of every stage's input path.

Hostile lines (random bytes, deep nesting, huge numbers, NaN, duplicate keys, lone surrogates, NUL,
non-string fields), random Parquet schemas and types, empty, truncated and damaged files: no stage
crashes, ``stats.json`` balances (input = output + removed), the input count is every record the
files hold, and every *valid* document (an id we track, strict UTF-8, a JSON object or a row with
string ``text`` that is not blank) is kept or removed for a stated reason.

Runs are bounded and derandomized so CI is reproducible; ``HYPOTHESIS_PROFILE=thorough`` runs many
more examples with random seeds (tests/conftest.py).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mixtures import tokenizer as T
from pipelines import clean, dedup, tokenize
from pipelines import filter as filter_stage
from pipelines.io import iter_file_records
from tests.conftest import DATA, read_jsonl_gz, warc_record

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
HOSTILE = settings(deadline=None, derandomize=not THOROUGH, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.function_scoped_fixture, HealthCheck.large_base_example])
# Each example of a stage runs Beam pipelines (seconds): report the failing example as found, unshrunk.
PIPELINES = settings(HOSTILE, phases=[Phase.explicit, Phase.generate])
pytestmark = pytest.mark.slow


def examples(n: int) -> int:
    return n * 20 if THOROUGH else n


def _sentences() -> list[str]:
    docs = (read_jsonl_gz(DATA / "finance" / "reuters_finance.jsonl.gz")[:15]
            + read_jsonl_gz(DATA / "general" / "bbc_nonbusiness.jsonl.gz")[:15])
    return [s.strip() for d in docs for s in d["text"].split(". ") if len(s.strip()) > 30][:200]


SENTENCES = _sentences()
ODD = ["", "\x00", "\ud800", "\udfff", "\u202e", "\ufeff", "\x1b[31m", "\u0301", "\U0001f600", "\r", "\t\t"]
TRACKED = "valid-doc-"  # ids of generated valid documents (random text is too short to forge one)

# ------------------------------------------------------------------------------ strategies

texts = st.builds(lambda parts, odd: odd.join(parts), st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=8),
                  st.sampled_from(ODD))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                    st.sampled_from(ODD))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)


@st.composite
def valid_payload(draw):
    """A valid document without its id: string text, any source/meta/extra fields."""
    doc = {"text": draw(texts)}
    for key in ("source", "meta", "domain", "extra"):
        if draw(st.booleans()):
            doc[key] = draw(json_values)
    return doc


hostile_lines = st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(100, 100_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(100, 100_000).map(lambda n: b'{"text": ' + b"{\"a\":" * n + b"1" + b"}" * n + b"}"),
    st.just(b'{"text": "a b c", "n": ' + b"9" * 5000 + b"}"),         # beyond int's str digits limit
    st.just(b'{"id": 7, "text": "Not a number", "v": NaN, "w": -Infinity}'),
    st.just(b'{"text": 5, "text": "the last duplicate key wins", "id": [1]}'),
    st.just(b'{"text": "raw \x00 NUL in a string"}'),
    st.just(b'{"text": "caf\xe9 latin-1"}'),
    st.just(json.dumps({"text": "lone \ud800"}, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.just(b'\xef\xbb\xbf{"text": "after a BOM"}'),
    st.sampled_from([b"", b"   \t", b"{}", b"null", b'{"text": null}', b'{"text": "   "}', b'{"text": ["a"]}']),
)

# one line: a tracked valid document (payload dict) or hostile bytes
lines = st.lists(st.one_of(valid_payload(), hostile_lines), min_size=0, max_size=25)


def serialize(items: list, file_tag: str, ascii_json: bool) -> tuple[list[bytes], dict[int, str]]:
    """Lines as bytes, and {line number: tracked id} of the valid documents."""
    out, tracked = [], {}
    for n, item in enumerate(items, start=1):
        if isinstance(item, dict):
            doc_id = f"{TRACKED}{file_tag}-{n}"
            out.append(json.dumps({**item, "id": doc_id}, ensure_ascii=ascii_json).encode("utf-8", "surrogatepass"))
            # ensure_ascii=False with a lone surrogate gives bytes that are not UTF-8: not a valid document
            if ascii_json or not any("\ud800" <= c <= "\udfff" for c in json.dumps(item, ensure_ascii=False)):
                tracked[n] = doc_id
        else:
            out.append(item)
    return out, tracked


# ------------------------------------------------------------------------------ accounting

def accounted_ids(out: Path, at: dict[tuple[str, int], str]) -> set[str]:
    """Every id a stage directory accounts for: kept, duplicate, tokenized, removed or rejected
    (rejections are matched by file and line through ``at``). Every side record has a reason."""
    ids: set[str] = set()
    for pattern in ("train-*.parquet", "duplicates/part-*.parquet", "**/part-*.index.parquet"):
        for path in out.glob(pattern):
            ids |= set(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    for folder in ("rejected", "removed"):
        for path in (out / folder).glob("*.jsonl"):
            for line in path.read_text(encoding="utf-8").split("\n"):  # \n only: splitlines breaks at U+2028
                if not line:
                    continue
                rec = json.loads(line)
                assert rec["reason"], rec
                if isinstance(rec.get("id"), str):
                    ids.add(rec["id"])
                if "file" in rec:
                    ids.add(at.get((os.path.basename(rec["file"]), rec["line"]), ""))
    return ids


def check_balanced(stats: dict, expected_input: int | None) -> None:
    assert stats["balanced"], stats
    assert stats["input"] == stats["output"] + sum(stats["removed"].values()), stats
    for source, s in stats.get("by_source", {}).items():  # each source's funnel balances too
        assert s["input"] == s["output"] + sum(s["removed"].values()), (source, s)
    assert sum(s["output"] for s in stats.get("by_source", {}).values()) == stats["output"], stats
    if expected_input is not None:
        assert stats["input"] == expected_input, stats


def n_lines(data: bytes) -> int:
    """How many lines a reader yields: pieces between newlines, the last one if not empty."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


# ------------------------------------------------------------------------------ reader

@settings(HOSTILE, max_examples=examples(150))
@given(items=lines, ascii_json=st.booleans(), final_newline=st.booleans())
def test_reader_yields_one_record_per_line_and_parses_every_valid_one(tmp_path, items, ascii_json, final_newline):
    raw, tracked = serialize(items, "r", ascii_json)
    data = b"\n".join(raw) + (b"\n" if final_newline and raw else b"")
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "x.jsonl"
    path.write_bytes(data)
    records = list(iter_file_records(str(path)))
    assert [line for line, _ in records] == list(range(1, n_lines(data) + 1))
    for line, doc_id in tracked.items():
        assert records[line - 1][1]["id"] == doc_id


# ------------------------------------------------------------------------------ clean

@st.composite
def clean_inputs(draw):
    """Files for the clean stage: JSON Lines plain / gzip / zstd (maybe truncated), text, HTML, WARC,
    empty files. Returns {name: bytes}, {(name, line): tracked id}, and the expected input count
    (None when a truncated file makes it unknowable)."""
    files, at, expected = {}, {}, 0
    for k in range(draw(st.integers(1, 3))):
        raw, tracked = serialize(draw(lines), f"j{k}", draw(st.booleans()))
        data = b"\n".join(raw) + (b"\n" if raw and draw(st.booleans()) else b"")
        kind = draw(st.sampled_from(["plain", "gzip", "zstd", "truncated_gzip"]))
        name = f"j{k}.jsonl" + {"plain": "", "gzip": ".gz", "zstd": ".zst", "truncated_gzip": ".gz"}[kind]
        if kind == "plain":
            files[name] = data
        elif kind == "zstd":
            files[name] = zstandard.ZstdCompressor().compress(data)
        else:
            files[name] = gzip.compress(data, mtime=0)
        if kind == "truncated_gzip":
            files[name] = files[name][: draw(st.integers(1, len(files[name]) - 1))]
            expected = None
        else:
            at.update({(name, line): doc_id for line, doc_id in tracked.items()})
            if expected is not None:
                expected += n_lines(data)
    for name in draw(st.lists(st.sampled_from(["empty.jsonl", "empty.jsonl.gz", "empty.parquet"]), unique=True)):
        files[name] = b""
        if expected is not None:
            expected += 1 if name.endswith((".gz", ".parquet")) else 0  # unreadable; plain empty = no lines
    if draw(st.booleans()):  # whole-file formats: one record each
        files["page.html"] = draw(st.binary(max_size=200))
        files["notes.txt"] = draw(st.one_of(texts.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary()))
        expected = None if expected is None else expected + 2
    if draw(st.booleans()):
        ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><body><p>" + SENTENCES[0].encode() + b"</p>"
        warc = warc_record("response", "http://example.com/a", ok) + draw(st.binary(max_size=100))
        files["crawl.warc.gz"] = warc[: draw(st.integers(1, len(warc)))]
        expected = None
    return files, at, expected


@settings(PIPELINES, max_examples=examples(10))
@given(case=clean_inputs(), split_mb=st.sampled_from(["64", "0.0003"]))
def test_clean_never_crashes_and_accounts_for_every_valid_document(tmp_path, case, split_mb):
    files, at, expected = case
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    for name, data in files.items():
        (root / "in").mkdir(exist_ok=True)
        (root / "in" / name).write_bytes(data)
    out = root / "out"
    stats = clean.main(["--input", str(root / "in" / "*"), "--output", str(out), "--domain", "domain",
                        "--split-mb", split_mb])
    # gzip empty files read as zero lines on some zlib versions: count them either way
    empties = sum(1 for n in files if n == "empty.jsonl.gz")
    if expected is not None and stats["input"] != expected:
        expected -= empties
    check_balanced(stats, expected)
    missing = set(at.values()) - accounted_ids(out, at)
    assert not missing, (missing, stats)


# ------------------------------------------------------------------------------ Parquet stages

COLUMN_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "null": pa.null(),
                "list": pa.list_(pa.string()), "struct": pa.struct([("a", pa.string())])}


def _storable(text: str) -> str:
    """Parquet stores UTF-8: a lone surrogate cannot be written, so other tools cannot produce one."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _value(draw, kind: str, text_like: bool):
    if kind == "string":
        return draw(st.one_of(st.none(), (texts if text_like else st.text(max_size=8)).map(_storable),
                              st.just(""), st.just("  ")))
    if kind == "int":
        return draw(st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)))
    if kind == "float":
        return draw(st.one_of(st.none(), st.floats()))
    if kind == "null":
        return None
    if kind == "list":
        return draw(st.one_of(st.none(), st.lists(st.text(max_size=5), max_size=3)))
    return draw(st.one_of(st.none(), st.builds(lambda a: {"a": a}, st.text(max_size=5))))


@st.composite
def parquet_inputs(draw):
    """Stage-output-like Parquet files: the first usually a proper document file, the others with
    random schemas (missing columns, other types), plus empty, truncated and damaged files."""
    files, at, rows_total = {}, {}, 0
    first_good = draw(st.booleans()) or draw(st.booleans())
    n_files = draw(st.integers(1, 3))
    for k in range(n_files):
        if k == 0 and first_good:
            schema = {c: "string" for c in ("id", "text", "source", "domain", "meta")}
        else:
            names = draw(st.lists(st.sampled_from(["id", "text", "source", "domain", "meta", "score"]), unique=True))
            schema = {c: draw(st.sampled_from(sorted(COLUMN_TYPES))) for c in names}
        rows = []
        for n in range(1, draw(st.integers(0, 30)) + 1):
            row = {c: _value(draw, kind, c == "text") for c, kind in schema.items()}
            if schema.get("id") == "string" and schema.get("text") == "string" and draw(st.booleans()):
                row["id"], row["text"] = f"{TRACKED}p{k}-{n}", _storable(draw(texts))
                if schema.get("source") not in (None, "string", "null"):
                    row.pop("id")  # a non-string source is rejected: fine, but not "valid"
                else:
                    at[(f"train-{k}.parquet", n)] = row["id"]
            rows.append(row)
        table = pa.Table.from_pylist(rows, schema=pa.schema([(c, COLUMN_TYPES[t]) for c, t in schema.items()]))
        sink = io.BytesIO()
        pq.write_table(table, sink, row_group_size=draw(st.integers(1, 12)), compression="zstd")
        files[f"train-{k}.parquet"] = sink.getvalue()
        rows_total += len(rows)
    damage = draw(st.sampled_from(["none", "none", "empty", "truncated", "garbage", "flipped"]))
    if damage != "none":
        victim = f"train-{n_files - 1}.parquet"
        data = files[victim]
        if damage == "empty":
            data = b""
        elif damage == "truncated":
            data = data[: draw(st.integers(1, len(data) - 1))]
        elif damage == "garbage":
            data = draw(st.binary(min_size=1, max_size=300))
        else:  # bytes flipped inside the data pages: the footer still reads, a row group may not
            pos = draw(st.integers(4, max(4, len(data) // 2)))
            data = data[:pos] + bytes(b ^ 0xFF for b in data[pos:pos + 16]) + data[pos + 16:]
        files[victim] = data
        at = {key: v for key, v in at.items() if key[0] != victim}
    return files, at


def _expected_input(root: Path) -> int:
    total = 0
    for path in sorted(root.glob("*.parquet")):
        try:
            total += pq.ParquetFile(path).metadata.num_rows
        except Exception:
            total += 1  # one unreadable_file
    return total


def _first_readable_lacks_documents(root: Path) -> bool | None:
    for path in sorted(root.glob("*.parquet")):
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except Exception:
            continue
        return not {"id", "text", "source", "domain", "meta"} <= set(names)
    return None  # nothing readable


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    cfg = T.TokenizerConfig(type="bpe", vocab_size=400)
    root = tmp_path_factory.mktemp("tok")
    return str(T.save_tokenizer(T.train_tokenizer(SENTENCES, cfg), root, cfg))


@settings(PIPELINES, max_examples=examples(6))
@given(case=parquet_inputs())
def test_parquet_stages_never_crash_and_account_for_every_valid_row(tmp_path, tiny_tokenizer, case):
    files, at = case
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    (root / "in").mkdir()
    for name, data in files.items():
        (root / "in" / name).write_bytes(data)
    refused = _first_readable_lacks_documents(root / "in")
    runs = {
        "filter": lambda out: filter_stage.main(["--input", str(root / "in"), "--output", str(out)]),
        "dedup": lambda out: dedup.main(["--input", str(root / "in"), "--output", str(out), "--cross-source"]),
        "tokenize": lambda out: tokenize.main(["--input", str(root / "in"), "--output", str(out),
                                               "--tokenizer", tiny_tokenizer]),
    }
    for stage, run in runs.items():
        out = root / stage
        if refused is not False and stage != "tokenize":  # no schema to write with: a clear exit-2 refusal
            with pytest.raises(SystemExit) as exc:
                run(out)
            assert exc.value.code == 2, stage
            continue
        stats = run(out)
        check_balanced(stats, _expected_input(root / "in"))
        missing = set(at.values()) - accounted_ids(out, at)
        assert not missing, (stage, missing, stats)


# ------------------------------------------------------------------------------ Hugging Face datasets

@settings(PIPELINES, max_examples=examples(3))
@given(kind=st.sampled_from(["string", "int", "list"]), n=st.integers(1, 12), data=st.data())
def test_hugging_face_rows_of_any_text_type_are_accounted_for(tmp_path, kind, n, data):
    import datasets

    values = [_value(data.draw, kind, True) for _ in range(n)]
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    features = datasets.Features({"content": {"string": datasets.Value("string"), "int": datasets.Value("int64"),
                                              "list": datasets.List(datasets.Value("string"))}[kind]})
    datasets.Dataset.from_dict({"content": values}, features=features).save_to_disk(str(root / "hf"))
    stats = clean.main(["--hf-dataset", str(root / "hf"), "--hf-text-field", "content", "--hf-shards", "2",
                        "--source", "hf", "--domain", "general", "--output", str(root / "out")])
    check_balanced(stats, n)
    valid = sum(1 for v in values if isinstance(v, str) and v.strip())
    assert stats["output"] <= valid


# ------------------------------------------------------------------------------ one failing step

POISON = "POISONED-DOCUMENT"


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    """Twelve real documents as JSON Lines and as a stage directory; the fourth carries the poison."""
    docs = read_jsonl_gz(DATA / "general" / "bbc_nonbusiness.jsonl.gz")[:12]
    rows = [{"id": f"d{i}", "text": d["text"] + (f"\n\n{POISON}" if i == 3 else ""), "source": "bbc_news",
             "domain": "general", "meta": "{}"} for i, d in enumerate(docs)]
    root = tmp_path_factory.mktemp("poisoned")
    (root / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "stage").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "stage" / "train-00000.parquet")
    return root


def _poison(fn):
    """``fn``, raising on any input that mentions the poison (one text or a batch of texts)."""
    def wrapped(*args, **kwargs):
        if POISON in repr(args):
            raise RuntimeError("a step failed on one document")
        return fn(*args, **kwargs)
    return wrapped


def _side(out: Path, folder: str) -> list[dict]:
    return [json.loads(x) for p in sorted((out / folder).glob("*.jsonl"))
            for x in p.read_text(encoding="utf-8").split("\n") if x]


@pytest.mark.parametrize("stage", ["clean", "filter", "dedup", "tokenize"])
def test_a_step_that_fails_on_one_document_costs_only_that_document(stage, poisoned, tiny_tokenizer, tmp_path,
                                                                     monkeypatch):
    import filters.minhash
    import filters.rules

    out = tmp_path / stage
    if stage == "clean":
        monkeypatch.setattr(clean, "clean_text", _poison(clean.clean_text))
        stats = clean.main(["--input", str(poisoned / "docs.jsonl"), "--output", str(out), "--domain", "general"])
        assert [(r["line"], r["reason"]) for r in _side(out, "rejected")] == [(4, "record_error:RuntimeError")]
    elif stage == "filter":
        monkeypatch.setattr(filters.rules.DocumentFilter, "judge", _poison(filters.rules.DocumentFilter.judge))
        stats = filter_stage.main(["--input", str(poisoned / "stage"), "--output", str(out)])
        assert [r["id"] for r in _side(out, "removed") if r["reason"] == "record_error:RuntimeError"] == ["d3"]
    elif stage == "dedup":  # a document that cannot be fingerprinted is kept (a duplicate of nothing), and counted
        monkeypatch.setattr(filters.minhash.MinHashConfig, "fingerprint_batch",
                            _poison(filters.minhash.MinHashConfig.fingerprint_batch))
        stats = dedup.main(["--input", str(poisoned / "stage"), "--output", str(out)])
        assert stats["counts"]["fingerprint_error:RuntimeError"] == 1 and stats["output"] == 12
    else:
        monkeypatch.setattr(tokenize, "encode_documents", _poison(tokenize.encode_documents))
        stats = tokenize.main(["--input", str(poisoned / "stage"), "--output", str(out), "--tokenizer", tiny_tokenizer])
        assert [r["id"] for r in _side(out, "removed")] == ["d3"]
    check_balanced(stats, 12)
    assert stats["removed"].get("record_error:RuntimeError", 0) == (0 if stage == "dedup" else 1)
    assert stats["output"] == 12 - sum(stats["removed"].values())
