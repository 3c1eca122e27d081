"""Reading raw records and writing stage outputs, on any Beam filesystem.

Every path goes through ``apache_beam.io.filesystems.FileSystems`` so ``gs://`` (and
``s3://``, ``hdfs://``...) work exactly like local paths. This module reads whole files;
``pipelines/splits.py`` cuts large ones into splits and writes the stage outputs.

Readers never raise on bad data. ``iter_file_records`` yields either a parsed record or a
:class:`Rejected` with a stable reason code, so every record of every file is accounted for.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from core.documents import DOC_FIELDS, DOC_SCHEMA, is_utf8_safe, meta_json
from core.workdir import DOCS_GLOB
from filters.edgar import iter_submission, looks_like_submission

DEFAULT_MAX_TEXT_BYTES = 1_000_000  # 1 MB of UTF-8 text per document
RAW_SNIPPET_BYTES = 1024  # how much of a rejected record is kept for inspection
SUBMISSION_SNIFF_BYTES = 1024  # an EDGAR full-submission file says so in its first line (filters/edgar.py)
FIELD_SAMPLE_RECORDS = 100  # records of the first input file sampled to check that the text field exists
FIELD_SAMPLE_FILES = 5  # ... taking the first of this many files that has readable records
FIELDS_SHOWN = 20  # field names listed when the text field is found in none of the sampled records
RECORD_FORMATS = ("jsonl", "parquet")  # formats whose records have fields (--text-field / --id-field apply)

# extension (after removing a compression suffix) -> format
FORMATS = {
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".txt": "text", ".text": "text", ".md": "text", ".rst": "text",
    ".html": "html", ".htm": "html",
    ".warc": "warc",
}
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}


class InputError(ValueError):
    """A user-facing problem with inputs or options (bad path, unsupported format)."""


@dataclass(frozen=True)
class Rejected:
    """A record that could not become a document, with why and where."""

    reason: str
    file: str
    line: int  # 1-based line (JSONL), row (Parquet) or 1 (whole-file formats); 0 = the file itself
    raw: str = ""
    source: str | None = None  # when known (a document removed by cleaning): counted in stats by_source

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["source"] is None:
            del out["source"]
        return out


def snippet(raw: bytes | str) -> str:
    """Up to 1 KB of a raw record, decoded leniently, for the dead-letter file."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    return raw[:RAW_SNIPPET_BYTES].decode("utf-8", "backslashreplace")


def detect_format(path: str) -> tuple[str, str | None]:
    """``(format, compression)`` of a file from its name, e.g. ``x.jsonl.zst -> ("jsonl", "zstd")``."""
    name = posixpath.basename(path).lower()
    stem, ext = os.path.splitext(name)
    compression = COMPRESSIONS.get(ext)
    if compression:
        stem, ext = os.path.splitext(stem)
    fmt = FORMATS.get(ext)
    if fmt is None or (fmt == "parquet" and compression) or (fmt == "warc" and compression == "zstd"):
        raise InputError(f"unsupported input file {path!r}: expected one of "
                         f"{sorted(FORMATS)} (JSON Lines and text optionally .gz/.zst)")
    return fmt, compression


def _has_format(path: str) -> bool:
    try:
        detect_format(path)
        return True
    except InputError:
        return False


def expand_inputs(patterns: Iterable[str]) -> list[str]:
    """Every file matched by the glob patterns, sorted and de-duplicated.

    A directory (local, any pattern ending in ``/``, or an object-store prefix without glob
    characters or a file extension) means its ``train-*.parquet`` files (``pipelines.DOCS_GLOB``):
    another stage's output.
    Raises :class:`InputError` when a pattern matches nothing.
    """
    files: set[str] = set()
    for pattern in patterns:
        if pattern.endswith("/") or (FileSystems.get_scheme(pattern) is None and os.path.isdir(pattern)):
            pattern = FileSystems.join(pattern.rstrip("/"), DOCS_GLOB)
        try:
            results = FileSystems.match([pattern])[0].metadata_list
        except Exception as exc:  # BeamIOError, unknown scheme, missing credentials...
            raise InputError(f"cannot list input {pattern!r}: {exc}") from exc
        matched = [m.path for m in results if not m.path.endswith("/")]
        if not any(c in pattern for c in "*?[") and not _has_format(pattern):
            # an object store has no directories: gs://bucket/stage means its part files
            try:
                parts = FileSystems.match([FileSystems.join(pattern, DOCS_GLOB)])[0].metadata_list
            except Exception:
                parts = []
            matched = [m.path for m in parts] or matched
        if not matched:
            raise InputError(f"input {pattern!r} matches no files")
        files.update(matched)
    return sorted(files)


def open_binary(path: str, compression: str | None) -> io.BufferedIOBase:
    """A decompressing binary stream over a file on any Beam filesystem."""
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "zstd":
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True))
    return raw


def _decode(raw: bytes, path: str, line: int) -> str | Rejected:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected("invalid_utf8", path, line, snippet(raw))


def iter_file_records(path: str) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    """``(line, record)`` for every record of one input file; a record is a dict or a Rejected.

    A file that cannot be read past some point (truncated gzip, corrupt zstd, unreadable
    Parquet) yields what it could read, then one ``unreadable_file`` rejection.
    """
    fmt, compression = detect_format(path)
    line = 0
    try:
        if fmt == "parquet":
            yield from _iter_parquet(path)
            return
        if fmt == "warc":
            for line, record in _iter_warc(path):
                yield line, record
            return
        with open_binary(path, compression) as stream:
            if fmt in ("text", "html"):
                line = 1
                stream = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
                if looks_like_submission(stream.peek(SUBMISSION_SNIFF_BYTES)[:SUBMISSION_SNIFF_BYTES]
                                         .decode("latin-1")):
                    for line, record in _iter_submission(stream, path):
                        yield line, record
                    return
                data = stream.read()
                text = _decode(data, path, 1)
                if isinstance(text, Rejected):
                    yield 1, text
                    return
                record = {"id": posixpath.basename(path), "text": text,
                          "meta": {"file": path, "format": fmt}}
                yield 1, record
                return
            for line, raw in enumerate(stream, start=1):
                yield line, parse_json_line(raw, path, line)
    except Exception as exc:  # EOFError (truncated gzip), zstd/OS/Arrow errors
        yield line + 1, Rejected("unreadable_file", path, line + 1, f"{type(exc).__name__}: {exc}")


def _decode_lenient(raw: bytes) -> str:
    """A line of an EDGAR submission: UTF-8, else Windows-1252 (older filings), never an error."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _iter_submission(stream: io.BufferedIOBase, path: str) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    """Each ``<DOCUMENT>`` of an EDGAR full-submission file is one record (``line``: the line of its
    ``<DOCUMENT>`` tag); graphics, PDFs, archives and XBRL/XML documents are rejected as
    ``edgar_not_text:<kind>`` without holding their bodies (``filters/edgar.py``). Memory: one
    document at a time."""
    name = posixpath.basename(path)
    for doc in iter_submission(_decode_lenient(raw) for raw in stream):
        if doc.text is None:
            yield doc.line, Rejected(doc.reason or "edgar_not_text:unknown", path, doc.line, snippet(doc.head))
            continue
        meta = {"file": path, "format": "edgar", **doc.meta}
        doc_id = f"{meta.get('accession_number') or name}:{meta.get('sequence') or doc.line}"
        yield doc.line, {"id": doc_id, "text": doc.text, "meta": meta}


def parse_json_line(raw: bytes, path: str, line: int) -> dict[str, Any] | Rejected:
    """One JSON Lines record: a dict, or a Rejected (invalid_utf8, blank_line, invalid_json, not_an_object)."""
    text = _decode(raw, path, line)
    if isinstance(text, Rejected):
        return text
    if not text.strip():
        return Rejected("blank_line", path, line, snippet(raw))
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the interpreter's stack
        return Rejected("invalid_json", path, line, snippet(raw))
    if not isinstance(record, dict):
        return Rejected("not_an_object", path, line, snippet(raw))
    return record


def _iter_warc(path: str) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    """Each WARC ``response`` record is one input record (requests, metadata... are not documents).

    HTML responses with status 200 become records with the raw page as ``text`` (the clean stage
    extracts it); other responses are rejected as ``warc_not_html`` / ``warc_http_error``. FastWARC
    (installed with Resiliparse) decompresses per-record gzip itself.
    """
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    def one(n: int, rec) -> dict[str, Any] | Rejected:
        url = rec.headers.get("WARC-Target-URI", "")
        status = rec.http_headers.status_code if rec.http_headers else None
        ctype = (rec.http_headers.get("Content-Type", "") if rec.http_headers else "").lower()
        if status != 200:
            return Rejected("warc_http_error", path, n, f"{status} {url}")
        if "html" not in ctype:
            return Rejected("warc_not_html", path, n, f"{ctype} {url}")
        body = rec.reader.read()
        text = bytes_to_str(body, rec.http_charset or detect_encoding(body))
        return {"id": rec.record_id, "text": text,
                "meta": {"url": url, "warc_date": rec.headers.get("WARC-Date", ""), "format": "html", "file": path}}

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        for n, rec in enumerate(ArchiveIterator(f, record_types=WarcRecordType.response, parse_http=True), start=1):
            try:  # one record's headers or body: that record alone (damage to the file ends it, above)
                yield n, one(n, rec)
            except Exception as exc:
                yield n, Rejected(f"record_error:{type(exc).__name__}", path, n, f"{exc}"[:RAW_SNIPPET_BYTES])


def _iter_parquet(path: str) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        parquet = pq.ParquetFile(f)
        row = 0
        for batch in parquet.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                row += 1
                yield row, record


# ---------------------------------------------------------------------------- field mapping

def has_fields(path: str) -> bool:
    """Whether a file's records are field mappings (JSON Lines, Parquet): where --text-field applies."""
    try:
        return detect_format(path)[0] in RECORD_FORMATS
    except InputError:
        return False


def field_value(record: dict[str, Any], path: str) -> tuple[bool, Any]:
    """``(found, value)`` of a field: a key of the record, else a dotted path into nested objects
    (``article.body``: the ``body`` of the record's ``article`` object)."""
    if path in record:
        return True, record[path]
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _pop_field(record: dict[str, Any], path: str) -> Any:
    """Remove a field found by :func:`field_value` (so that it is not copied into ``meta`` too)."""
    if path in record:
        return record.pop(path)
    *parents, leaf = path.split(".")
    chain: list[tuple[dict[str, Any], str]] = []
    node: Any = record
    for part in parents:
        chain.append((node, part))
        node = node.get(part) if isinstance(node, dict) else None
    value = node.pop(leaf, None) if isinstance(node, dict) else None
    for parent, key in reversed(chain):  # an object emptied by the move goes too ({"article": {}})
        if parent.get(key) == {}:
            del parent[key]
    return value


def map_fields(record: dict[str, Any], text_field: str = "text", id_field: str = "id") -> dict[str, Any]:
    """The record with its text under ``text`` and its id under ``id``, taken from ``text_field`` and
    ``id_field`` (keys or dotted paths). The mapped field is the text (or id): a record without it has
    none (``missing_text``; a missing id becomes ``<file>:<line>``), and a ``text``/``id`` key of its
    own is dropped. Other fields stay and go to ``meta``. Mutates and returns ``record``."""
    for field, target in ((text_field, "text"), (id_field, "id")):
        if field == target:
            continue
        found, _ = field_value(record, field)
        value = _pop_field(record, field) if found else None
        record.pop(target, None)
        if found:
            record[target] = value
    return record


def sample_fields(files: list[str], text_field: str = "text",
                  n: int = FIELD_SAMPLE_RECORDS) -> tuple[int, int, list[str]]:
    """``(records sampled, records with the text field, field names seen)`` over the first ``n``
    records of the first JSON Lines/Parquet input with readable records. Names are in order of first
    appearance, nested objects as dotted paths (one level)."""
    candidates = [f for f in files if has_fields(f)][:FIELD_SAMPLE_FILES]
    for path in candidates:
        records = [r for _, r in itertools.islice(iter_file_records(path), 4 * n) if isinstance(r, dict)][:n]
        if records:
            return _field_counts(records, text_field)
    return 0, 0, []


def _field_counts(records: list[dict[str, Any]], text_field: str) -> tuple[int, int, list[str]]:
    seen: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            seen[key] = None
            if isinstance(value, dict):
                seen.update((f"{key}.{sub}", None) for sub in value)
    have = sum(1 for r in records if field_value(r, text_field)[0])  # a null value: that record alone
    return len(records), have, list(seen)


def sample_hf_fields(name: str, split: str, config: str | None, text_field: str = "text",
                     n: int = FIELD_SAMPLE_RECORDS) -> tuple[int, int, list[str]]:
    """:func:`sample_fields` over the first ``n`` rows of a Hugging Face dataset split; ``(0, 0, [])``
    where it cannot be opened here (the read then reports why)."""
    try:
        ds = load_hf_dataset(name, split, config)
        rows = [dict(ds[i]) for i in range(min(n, len(ds)))]
    except Exception:  # missing split, not a dataset...: not this check's to report
        return 0, 0, []
    return _field_counts(rows, text_field)


def check_text_field(files: list[str], text_field: str = "text",
                     counts: tuple[int, int, list[str]] | None = None) -> None:
    """Refuse (:class:`InputError`, exit 2) a source where none of the sampled records has the text
    field: every document would otherwise be dropped as ``missing_text`` and the next stage would find
    no input. ``0 of 100 records have "text"; fields seen: id, body, title`` (``--text-field body``
    maps it). ``counts``: a sample taken already (:func:`sample_hf_fields`)."""
    n, have, seen = counts or sample_fields(files, text_field)
    if n and not have:
        shown = ", ".join(seen[:FIELDS_SHOWN]) + (", ..." if len(seen) > FIELDS_SHOWN else "")
        raise InputError(f'{have} of {n} records have "{text_field}"; fields seen: {shown or "none"}')


def to_document(record: dict[str, Any], *, path: str, line: int, source: str | None, domain: str,
                max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES) -> dict[str, str] | Rejected:
    """Validate a raw record and give it the document shape (id, text, source, domain, meta).

    ``source``, when given, overrides the record's own; a missing ``id`` becomes
    ``<file name>:<line>`` (stable, and unique within a source when file names are). A rejection
    carries the source (for the per-source counts) when it is known and storable.
    """
    doc_source = str(source or record.get("source") or posixpath.basename(path).split(".")[0])
    known = doc_source if is_utf8_safe(doc_source) else None

    def reject(reason: str, raw: str) -> Rejected:
        return Rejected(reason, path, line, snippet(raw), source=known)

    if "text" not in record or record["text"] is None:
        return reject("missing_text", json.dumps(record, default=str)[:2048])
    text = record["text"]
    if not isinstance(text, str):
        return reject("text_not_string", json.dumps(record, default=str)[:2048])
    if len(text) > max_text_bytes // 4 and len(text.encode("utf-8", "surrogatepass")) > max_text_bytes:
        return reject("oversized", text)
    doc_id = record.get("id")
    doc_id = f"{posixpath.basename(path)}:{line}" if doc_id is None or doc_id == "" else str(doc_id)
    if not (is_utf8_safe(doc_id) and known):  # a lone surrogate: not storable as UTF-8
        return reject("invalid_unicode", json.dumps(record, default=str)[:2048])
    meta = record.get("meta")
    extra = {k: v for k, v in record.items() if k not in DOC_FIELDS}
    if extra:
        meta = dict(meta) if isinstance(meta, dict) else ({} if meta in (None, "") else {"raw_meta": meta})
        meta.update(extra)
    return {"id": doc_id, "text": text, "source": doc_source, "domain": domain, "meta": meta_json(meta)}


def read_parquet_schema(files: list[str]) -> pa.Schema:
    """The output schema of a stage over Parquet inputs: the schema of the first input file that
    can be read (stages keep every input column). That file must have the five document columns,
    else the input is refused (:class:`InputError`, exit 2). Rows of other files that do not fit
    are rejected one by one when they are processed; unreadable files are rejected when read."""
    for path in files:
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                schema = pq.ParquetFile(f).schema_arrow
        except Exception:  # empty, truncated or not Parquet: counted as unreadable_file by the read
            continue
        missing = [c for c in DOC_FIELDS if c not in schema.names]
        if missing:
            raise InputError(f"{path} is not a stage output: columns {missing} are missing")
        return schema
    raise InputError(f"none of the {len(files)} input Parquet files can be read")


# ---------------------------------------------------------------------------- writing

def write_parquet_file(path: str, rows: list[dict[str, Any]], schema: pa.Schema = DOC_SCHEMA) -> int:
    """Write rows as one Parquet file (zstd) on any Beam filesystem; returns the row count."""
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=10_000)
    with FileSystems.create(path) as f:
        f.write(sink.getvalue())
    return table.num_rows


def prepare_output_dir(output: str, side_dirs: Iterable[str] = ()) -> None:
    """Create ``output`` and remove a previous run's shards and stats, so stale files never mix in."""
    try:
        FileSystems.mkdirs(output)
    except Exception:  # already exists (or an object store without directories)
        pass
    stale = []
    for pattern in [DOCS_GLOB, "stats.json", "README.md"] + [f"{d}/part-*" for d in side_dirs]:
        stale += [m.path for m in FileSystems.match([FileSystems.join(output, pattern)])[0].metadata_list]
    if stale:
        FileSystems.delete(stale)


def read_json(path: str) -> Any:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return json.loads(f.read().decode("utf-8"))


def write_json(path: str, obj: Any) -> None:
    with FileSystems.create(path) as f:
        f.write((json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


# ---------------------------------------------------------------------- Hugging Face datasets

def load_hf_dataset(name: str, split: str = "train", config: str | None = None):
    """A Hugging Face dataset split: a ``save_to_disk`` directory, a local data directory/script,
    or a hub name (network only because the user named a hub dataset)."""
    import datasets

    if os.path.isdir(name) and os.path.exists(os.path.join(name, "state.json")):
        ds = datasets.load_from_disk(name)
        return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    if os.path.isdir(name) and os.path.exists(os.path.join(name, "dataset_dict.json")):
        return datasets.load_from_disk(name)[split]
    return datasets.load_dataset(name, config, split=split)


def iter_hf_records(name: str, split: str, config: str | None, shard: int, num_shards: int,
                    text_field: str = "text", id_field: str = "id") -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row, record)`` for one contiguous shard of a dataset split, fields renamed to id/text."""
    ds = load_hf_dataset(name, split, config)
    if shard >= len(ds):  # more shards than rows: this one is empty (datasets raises IndexError)
        return
    part = ds.shard(num_shards=num_shards, index=shard, contiguous=True)
    offset = sum(len(ds) // num_shards + (1 if i < len(ds) % num_shards else 0) for i in range(shard))
    for i, row in enumerate(part, start=1):
        record = map_fields(dict(row), text_field, id_field)
        record.setdefault("id", f"{split}:{offset + i}")
        yield offset + i, record
