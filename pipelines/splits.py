"""Input splits: the unit of work of every stage, read, processed and written by one fused map.

A *split* is a piece of one input file that one worker reads from start to end:

- a Parquet file's range of row groups (consecutive row groups up to ``--split-mb``);
- a byte range of an uncompressed JSON Lines file, cut at line starts (a file larger than
  ``--split-mb`` is scanned once for newlines, so every split knows its first line number);
- a whole file otherwise (gzip and zstd cannot be split; text, HTML and WARC files are one
  record or a stream of records), with a log line suggesting to recompress a huge one;
- one contiguous shard of a Hugging Face dataset split.

A split's name, ``FFFFF-PPPP`` (the file's index in the sorted input list, the split's index
in the file), names everything the split writes: ``train-FFFFF-PPPP-RRR.parquet`` (side records: ``part-...``) where
``RRR`` counts roll-overs at ``--part-mb``. So the same input gives the same files, bytes
included, on any runner, worker count or running mode, without sorting or shuffling the
corpus: rows keep their input order and no document text goes through a ``GroupByKey``.
Memory per worker is one row group being written plus the reader's batch, whatever the
corpus size.

The graph that feeds the splits to workers is tiny (file names, then split descriptors)::

    Create(files) -> Reshuffle -> enumerate splits -> Reshuffle -> stage's ParDo over splits
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from core.documents import DOC_SCHEMA
from core.workdir import DOCS_PREFIX
from pipelines.io import (
    RAW_SNIPPET_BYTES,
    Rejected,
    detect_format,
    iter_file_records,
    iter_hf_records,
    parse_json_line,
    snippet,
)
from pipelines.stats import LANG_KEY, SOURCE_KEY, TYPE_KEY

DEFAULT_SPLIT_MB = 64      # largest input per split (uncompressed JSONL byte ranges, Parquet row groups) ...
MIN_SPLIT_MB = 4           # ... and smallest, when sized automatically: about SPLITS_PER_INPUT splits
SPLITS_PER_INPUT = 64      # of the whole input, so that a small corpus still spreads over local workers
DEFAULT_PART_MB = 256      # a written Parquet part rolls over past this much text
ROW_GROUP_ROWS = 10_000    # rows per written row group ...
ROW_GROUP_BYTES = 8 << 20  # ... or this many bytes of text, whichever comes first (the next stage's split grain)
SCAN_CHUNK = 16 << 20      # newline scan of a large JSONL file, read in chunks of this size
HUGE_UNSPLITTABLE = 1 << 30  # a compressed file this large gets a "recompress or split it" log line
PROGRESS_SECONDS = 30.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """One unit of input: ``kind`` is ``whole``, ``bytes`` (start/stop offsets), ``row_groups``
    (start/stop row group indices) or ``hf`` (start = shard, stop = number of shards)."""

    file: str
    file_index: int
    part: int
    kind: str
    start: int = 0
    stop: int = -1
    first_line: int = 1
    hf: tuple = ()  # (name, split, config, text_field, id_field) for kind == "hf"

    @property
    def name(self) -> str:
        return f"{self.file_index:05d}-{self.part:04d}"


# ---------------------------------------------------------------------------- enumerating

def file_size(path: str) -> int:
    try:
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    except Exception:  # unlistable: read it whole and let the reader report the problem
        return -1


def enumerate_splits(path: str, index: int, split_bytes: int) -> list[Split]:
    """The splits of one input file (never raises: an unreadable file is one whole split)."""
    fmt, compression = detect_format(path)
    try:
        if fmt == "parquet":
            return parquet_splits(path, index, split_bytes)
        size = file_size(path)
        if fmt == "jsonl" and compression is None and size > split_bytes:
            return [Split(path, index, k, "bytes", start, stop, line)
                    for k, (start, stop, line) in enumerate(line_ranges(path, size, split_bytes))]
        if compression and size >= HUGE_UNSPLITTABLE:
            log.warning("%s is %.1f GB of %s: compressed files cannot be split, so one worker reads it "
                        "whole; split it into smaller files or store it uncompressed/Parquet to spread it",
                        path, size / 1e9, compression)
    except Exception:
        log.warning("cannot plan splits of %s; reading it whole", path, exc_info=True)
    return [Split(path, index, 0, "whole")]


def parquet_splits(path: str, index: int, split_bytes: int) -> list[Split]:
    """Consecutive row groups up to ``split_bytes`` (uncompressed) per split."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        meta = pq.ParquetFile(f).metadata
    splits, start, size, row, first = [], 0, 0, 0, 1
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        size += rg.total_byte_size
        row += rg.num_rows
        if size >= split_bytes or g == meta.num_row_groups - 1:
            splits.append(Split(path, index, len(splits), "row_groups", start, g + 1, first))
            start, size, first = g + 1, 0, row + 1
    return splits or [Split(path, index, 0, "row_groups", 0, 0, 1)]


def line_ranges(path: str, size: int, split_bytes: int) -> list[tuple[int, int, int]]:
    """``(start, stop, first line)`` byte ranges of about ``split_bytes``, each starting at a line.

    One sequential pass counts newlines, so that rejections and default ids carry the same
    line numbers as a whole-file read.
    """
    bounds = [(0, 1)]
    target, pos, lines = split_bytes, 0, 0
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        while True:
            chunk = f.read(SCAN_CHUNK)
            if not chunk:
                break
            end = pos + len(chunk)
            while target < end:
                j = chunk.find(b"\n", max(target - 1 - pos, 0))
                if j < 0:
                    break
                boundary = pos + j + 1
                if boundary < size:
                    bounds.append((boundary, lines + chunk.count(b"\n", 0, j + 1) + 1))
                target = boundary + split_bytes
            lines += chunk.count(b"\n")
            pos = end
    return [(start, bounds[k + 1][0] if k + 1 < len(bounds) else size, line)
            for k, (start, line) in enumerate(bounds)]


class ExpandSplits(beam.DoFn):
    def __init__(self, split_bytes: int):
        self.split_bytes = split_bytes

    def process(self, item: tuple[int, str]):
        index, path = item
        yield from enumerate_splits(path, index, self.split_bytes)


class ReadSplits(beam.PTransform):
    """Input files (and optionally a HF dataset) -> a PCollection of :class:`Split`, spread over workers.

    Files are listed on the launcher (sorted, so file indices are stable); splits are planned
    on the workers (Parquet footers, newline scans), then redistributed.
    """

    def __init__(self, files: list[str], split_mb: float | None = DEFAULT_SPLIT_MB, hf: dict[str, Any] | None = None):
        super().__init__()
        self.files, self.split_bytes, self.hf = files, max(1, int((split_mb or DEFAULT_SPLIT_MB) * (1 << 20))), hf

    def expand(self, pbegin):
        splits = []
        if self.files:
            splits.append(pbegin
                          | "Files" >> beam.Create(list(enumerate(self.files)))
                          | "Spread files" >> beam.Reshuffle()
                          | "Plan splits" >> beam.ParDo(ExpandSplits(self.split_bytes)))
        if self.hf:
            h = self.hf
            label = f"hf:{h['name']}[{h['split']}]"
            shards = [Split(label, len(self.files), k, "hf", k, h["shards"], 1,
                            (h["name"], h["split"], h.get("config"), h.get("text_field", "text"),
                             h.get("id_field", "id")))
                      for k in range(h["shards"])]
            splits.append(pbegin | "HF shards" >> beam.Create(shards))
        merged = splits[0] if len(splits) == 1 else splits | "All splits" >> beam.Flatten()
        return merged | "Spread splits" >> beam.Reshuffle()


# ---------------------------------------------------------------------------- reading

def iter_split_records(split: Split, columns: list[str] | None = None
                       ) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    """``(line, record or Rejected)`` for every record of a split, in input order (Parquet: only
    ``columns`` when given)."""
    if split.kind == "whole":
        yield from iter_file_records(split.file)
    elif split.kind == "bytes":
        yield from _iter_byte_range(split)
    elif split.kind == "row_groups":
        yield from _iter_row_groups(split, columns)
    elif split.kind == "hf":
        name, hf_split, config, text_field, id_field = split.hf
        yield from iter_hf_records(name, hf_split, config, split.start, split.stop, text_field, id_field)
    else:
        raise ValueError(f"unknown split kind {split.kind!r}")


def _iter_byte_range(split: Split) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    line = split.first_line - 1
    try:
        with FileSystems.open(split.file, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            raw.seek(split.start)
            stream = io.BufferedReader(raw, 1 << 20) if not isinstance(raw, io.BufferedReader) else raw
            pos = split.start
            while pos < split.stop:
                data = stream.readline()
                if not data:
                    break
                pos += len(data)
                line += 1
                yield line, parse_json_line(data, split.file, line)
    except Exception as exc:
        yield line + 1, Rejected("unreadable_file", split.file, line + 1, f"{type(exc).__name__}: {exc}")


def _iter_row_groups(split: Split, columns: list[str] | None = None) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
    """Rows of a range of row groups. A row group that cannot be decoded (a damaged page) rejects
    each of its unread rows as ``unreadable_row_group`` (the footer says how many) and the next
    group is read; a file whose footer cannot be read is one ``unreadable_file``."""
    row = split.first_line - 1
    try:
        f = FileSystems.open(split.file, compression_type=CompressionTypes.UNCOMPRESSED)
        parquet = pq.ParquetFile(f)
    except Exception as exc:
        yield row + 1, Rejected("unreadable_file", split.file, row + 1, f"{type(exc).__name__}: {exc}")
        return
    with f:
        if columns is not None:  # a column this file lacks is None in its rows, not an error
            columns = [c for c in columns if c in parquet.schema_arrow.names]
        for g in range(split.start, split.stop):
            n_rows, done = parquet.metadata.row_group(g).num_rows, 0
            try:
                for batch in parquet.iter_batches(batch_size=1024, row_groups=[g], columns=columns):
                    for record in batch.to_pylist():
                        row, done = row + 1, done + 1
                        yield row, record
            except Exception as exc:
                why = f"row group {g}: {type(exc).__name__}: {exc}"[:RAW_SNIPPET_BYTES]
                for _ in range(n_rows - done):
                    row += 1
                    yield row, Rejected("unreadable_row_group", split.file, row, why)


def read_split(split: Split, convert: Callable[[dict[str, Any], str, int], Any], stage: str = "",
               columns: list[str] | None = None) -> Iterator[tuple[int, Any]]:
    """``(line, element or Rejected)``: each record through ``convert(record, file, line)``.

    An exception inside ``convert`` rejects that record alone (``record_error:<Exception>``).
    Logs progress every 30 s of a long split.
    """
    records = iter_split_records(split, columns)
    t0 = last = time.monotonic()
    n = 0
    for line, record in records:
        if not isinstance(record, Rejected):
            try:
                record = convert(record, split.file, line)
            except Exception as exc:
                record = Rejected(f"record_error:{type(exc).__name__}", split.file, line,
                                  snippet(json.dumps(record, default=str)[:2048]))
        yield line, record
        n += 1
        if n % 1000 == 0 and time.monotonic() - last > PROGRESS_SECONDS:
            last = time.monotonic()
            log.info("%s: split %s of %s: %d records, %.0f records/s", stage, split.name, split.file, n,
                     n / (last - t0))


def reject_bad_rows(split: Split, counts: SplitCounts, rejected: JsonlPart
                    ) -> Callable[[int, dict, Exception], None]:
    """``ParquetParts``'s ``on_bad_row`` for a stage: the row becomes a ``record_error:<Exception>``
    rejection (with its file and line) and is counted as removed."""
    def on_bad_row(line: int, row: dict, exc: Exception) -> None:
        reason = f"record_error:{type(exc).__name__}"
        rejected.write(Rejected(reason, split.file, line, snippet(json.dumps(row, default=str)[:2048])).to_dict())
        counts.add("removed/" + reason)
        counts.add_source(row.get("source"), "removed/" + reason)
    return on_bad_row


def accepted(records: Iterator[tuple[int, Any]], counts: SplitCounts, rejected: JsonlPart,
             source: str | None = None) -> Iterator[tuple[int, Any]]:
    """Count every record of ``read_split`` as input; write each :class:`Rejected` to ``rejected``
    (counted under its reason) and yield the others."""
    for line, record in records:
        counts.add("input")
        if isinstance(record, Rejected):
            rejected.write(record.to_dict())
            counts.add("removed/" + record.reason)
            if (record.source or source) is not None:  # ``source``: every record's (clean --source)
                counts.add_source(record.source or source, "input")
                counts.add_source(record.source or source, "removed/" + record.reason)
        else:
            if isinstance(record, dict) and "source" in record:
                counts.add_source(record["source"], "input")
            yield line, record


# ---------------------------------------------------------------------------- writing

def part_path(output_dir: str, split: Split, roll: int, suffix: str = ".parquet", folder: str = "",
              prefix: str = "part") -> str:
    base = output_dir.rstrip("/") + (f"/{folder}" if folder else "")
    return f"{base}/{prefix}-{split.name}-{roll:03d}{suffix}"


class ParquetParts:
    """Rows of one split -> ``<prefix>-<split>-<roll>.parquet`` files, streamed row group by row group.

    Kept documents use ``pipelines.DOCS_PREFIX`` (``train``); side records (``duplicates/``) use ``part``.

    A file rolls over past ``part_bytes`` of text; a row group holds at most ``ROW_GROUP_ROWS``
    rows or ``ROW_GROUP_BYTES`` of text. Nothing is written for a split without rows.

    A row that does not fit the schema (a column of another type in one input file, a string
    Arrow cannot store) goes to ``on_bad_row(line, row, exception)`` alone, and the rest of its
    row group is written; without ``on_bad_row`` (files this run wrote itself) it raises.
    """

    def __init__(self, output_dir: str, split: Split, schema: pa.Schema = DOC_SCHEMA,
                 part_mb: float = DEFAULT_PART_MB, folder: str = "", size_of: Callable[[dict], int] | None = None,
                 prefix: str = DOCS_PREFIX, on_bad_row: Callable[[int, dict, Exception], None] | None = None):
        self.output_dir, self.split, self.schema, self.folder = output_dir, split, schema, folder
        self.prefix, self.on_bad_row = prefix, on_bad_row
        self.lines: list[int] = []
        self.part_bytes = max(1, int(part_mb * (1 << 20)))
        self.group_bytes = min(ROW_GROUP_BYTES, self.part_bytes)
        self.size_of = size_of or (lambda row: len(row.get("text") or ""))
        self.rows: list[dict[str, Any]] = []
        self.buffered = self.file_bytes = 0
        self.roll, self.written = 0, 0
        self.by_source: Counter = Counter()  # rows written per value of the "source" column
        self.files: list[str] = []
        self._sink = self._writer = None

    def write(self, row: dict[str, Any], line: int = 0) -> None:
        """Buffer one row (``line``: where it came from, for ``on_bad_row``)."""
        self.rows.append(row)
        self.lines.append(line)
        self.buffered += self.size_of(row)
        if len(self.rows) >= ROW_GROUP_ROWS or self.buffered >= self.group_bytes:
            self._flush()

    def _table(self) -> pa.Table | None:
        """The buffered rows as one table; rows that do not convert go to ``on_bad_row`` (None: none left)."""
        try:
            return pa.Table.from_pylist(self.rows, schema=self.schema)
        except Exception:
            if self.on_bad_row is None:
                raise
        good = []
        for line, row in zip(self.lines, self.rows):
            try:
                pa.Table.from_pylist([row], schema=self.schema)
            except Exception as exc:
                self.on_bad_row(line, row, exc)
            else:
                good.append(row)
        return pa.Table.from_pylist(good, schema=self.schema) if good else None

    def _flush(self) -> None:
        if not self.rows:
            return
        table = self._table()
        buffered = self.buffered
        self.rows, self.lines, self.buffered = [], [], 0
        if table is None:
            return
        if self._writer is None:
            path = part_path(self.output_dir, self.split, self.roll, ".parquet", self.folder, self.prefix)
            self._sink = FileSystems.create(path)
            self._writer = pq.ParquetWriter(self._sink, self.schema, compression="zstd")
            self.files.append(path)
        self._writer.write_table(table, row_group_size=table.num_rows)
        self.written += table.num_rows
        if "source" in table.column_names:
            self.by_source.update(table.column("source").to_pylist())
        self.file_bytes += buffered
        if self.file_bytes >= self.part_bytes:
            self._close_file()
            self.roll += 1

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None
            self.file_bytes = 0

    def close(self) -> int:
        """Flush and close; returns the number of rows written."""
        self._flush()
        self._close_file()
        return self.written


class JsonlPart:
    """Side records of one split (rejected, removed, duplicates) -> ``<folder>/part-<split>-000.jsonl``,
    streamed; the file is only created when a first record arrives."""

    def __init__(self, output_dir: str, split: Split, folder: str, suffix: str = ""):
        self.path = part_path(output_dir, split, 0, f"{suffix}.jsonl", folder)
        self._sink = None
        self.written = 0

    def write(self, record: dict[str, Any]) -> None:
        if self._sink is None:
            self._sink = FileSystems.create(self.path)
        line = json.dumps(record, ensure_ascii=False, sort_keys=True, default=str) + "\n"
        self._sink.write(line.encode("utf-8", "surrogatepass"))
        self.written += 1

    def close(self) -> int:
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        return self.written


# ---------------------------------------------------------------------------- counting, progress

class SplitCounts:
    """Counts of one split -> ``(key, n)`` pairs for :class:`pipelines.stats.WriteStats`, and Metrics."""

    def __init__(self, stage: str):
        self.stage = stage
        self.counts: Counter = Counter()

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def add_source(self, source: Any, what: str, n: int = 1) -> None:
        """One source's count: ``what`` is "input", "output" or "removed/<reason>" (stats ``by_source``)."""
        self.counts[f"{SOURCE_KEY}{source if source is not None else ''}\x1f{what}"] += n

    def add_type(self, doc_type: str, what: str, n: int = 1) -> None:
        """One document type's count: ``what`` is "input", "output" or "removed" (stats ``by_type``)."""
        self.counts[f"{TYPE_KEY}{doc_type}\x1f{what}"] += n

    def pairs(self) -> Iterator[tuple[str, int]]:
        for key, n in sorted(self.counts.items()):
            if not key.startswith((SOURCE_KEY, LANG_KEY, TYPE_KEY)):  # per source / language / type: stats.json
                Metrics.counter(self.stage, key).inc(n)
            yield key, n


class Progress:
    """Per-worker progress lines: splits done, records, records/s (one line per split, at most
    every few seconds, plus the 30 s lines inside a long split)."""

    def __init__(self, stage: str, every: float = 5.0):
        self.stage, self.every, self.splits, self.records = stage, every, 0, 0
        self.t0, self.last = time.monotonic(), float("-inf")

    def done(self, split: Split, records: int) -> None:
        now = time.monotonic()
        self.splits += 1
        self.records += records
        if now - self.last >= self.every:
            self.last = now
            rate = self.records / max(now - self.t0, 1e-9)
            log.info("%s: %d splits done on this worker (last %s, %s), %d records, %.0f records/s", self.stage,
                     self.splits, split.name, os.path.basename(split.file), self.records, rate)


def auto_split_mb(split_mb: float | None, total_bytes: int) -> float:
    """``--split-mb`` as given, else sized from the whole input: about ``SPLITS_PER_INPUT`` splits,
    between ``MIN_SPLIT_MB`` and ``DEFAULT_SPLIT_MB``. Depends on the input only (never on the
    runner or worker count), so outputs stay the same bytes everywhere."""
    if split_mb:
        return split_mb
    if total_bytes < 0:
        return DEFAULT_SPLIT_MB
    return float(min(DEFAULT_SPLIT_MB, max(MIN_SPLIT_MB, round(total_bytes / (1 << 20) / SPLITS_PER_INPUT))))


def describe_inputs(stage: str, files: list[str]) -> int:
    """One launcher line: how much input there is (sizes listed without reading the files); returns
    the total bytes, or -1 when they cannot be listed."""
    try:
        total = sum(m.size_in_bytes for r in FileSystems.match(files) for m in r.metadata_list)
    except Exception:
        total = -1
    print(f"{stage}: {len(files):,} input files" + (f", {total / 1e6:,.1f} MB" if total >= 0 else ""), flush=True)
    return total
