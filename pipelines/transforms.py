"""Beam transforms shared by every stage: read input files, write sharded outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apache_beam as beam
import pyarrow as pa

from pipelines.documents import DOC_SCHEMA
from pipelines.io import (Rejected, iter_file_records, iter_hf_records, shard_name, shard_of,
                          write_jsonl_file, write_parquet_file)

REJECTED = "rejected"


class ReadFileRecords(beam.DoFn):
    """File path -> ``(line, record)`` for each record, rejections on the ``rejected`` output.

    ``convert(record, path, line)`` turns a parsed record into the element to emit, or a
    :class:`Rejected`; it runs here so that validation rides on the read.
    """

    def __init__(self, convert: Callable[[dict[str, Any], str, int], Any]):
        self.convert = convert

    def process(self, path: str):
        for line, record in iter_file_records(path):
            if not isinstance(record, Rejected):
                record = self.convert(record, path, line)
            if isinstance(record, Rejected):
                yield beam.pvalue.TaggedOutput(REJECTED, record.to_dict())
            else:
                yield record


class ReadFiles(beam.PTransform):
    """A fixed list of files -> records (main output) and rejections (``rejected``).

    Files are listed on the launcher (``expand_inputs``) and spread over workers with a
    Reshuffle, so each worker reads whole files in parallel.
    """

    def __init__(self, files: list[str], convert: Callable[[dict[str, Any], str, int], Any]):
        super().__init__()
        self.files, self.convert = files, convert

    def expand(self, pbegin):
        return (pbegin
                | "Files" >> beam.Create(self.files)
                | "Spread files" >> beam.Reshuffle()
                | "Read records" >> beam.ParDo(ReadFileRecords(self.convert)).with_outputs(REJECTED, main="records"))


class ReadHFDataset(beam.PTransform):
    """A Hugging Face dataset split -> records and rejections, read as ``num_shards`` contiguous
    shards in parallel (each worker loads the dataset, memory-mapped Arrow, and reads its shard)."""

    def __init__(self, name: str, split: str, config: str | None, num_shards: int,
                 convert: Callable[[dict[str, Any], str, int], Any], text_field: str = "text",
                 id_field: str = "id"):
        super().__init__()
        self.args = (name, split, config, num_shards, text_field, id_field)
        self.convert = convert

    def expand(self, pbegin):
        name, split, config, num_shards, text_field, id_field = self.args
        convert, label = self.convert, f"hf:{name}[{split}]"

        def read(shard: int):
            for row, record in iter_hf_records(name, split, config, shard, num_shards, text_field, id_field):
                element = convert(record, label, row)
                if isinstance(element, Rejected):
                    yield beam.pvalue.TaggedOutput(REJECTED, element.to_dict())
                else:
                    yield element

        return (pbegin
                | "Shards" >> beam.Create(list(range(num_shards)))
                | "Spread shards" >> beam.Reshuffle()
                | "Read rows" >> beam.FlatMap(read).with_outputs(REJECTED, main="records"))


class WriteShards(beam.PTransform):
    """Write elements into ``num_shards`` files ``PREFIX-0000i-of-0000n.SUFFIX``, deterministically.

    Each element goes to the shard given by a stable hash of ``key(element)`` and shards are
    sorted by that key before writing, so the same input gives the same files (bytes
    included) whatever the runner, its parallelism or the arrival order. Returns
    ``("output", rows)`` per written file, ready for :func:`pipelines.stats.tally`-style sums.
    """

    def __init__(self, prefix: str, num_shards: int, key: Callable[[Any], str],
                 write: Callable[[str, list[Any]], int], suffix: str):
        super().__init__()
        if num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {num_shards}")
        self.prefix, self.num_shards, self.key, self.write, self.suffix = prefix, num_shards, key, write, suffix

    def expand(self, pcoll):
        prefix, n, key, write, suffix = self.prefix, self.num_shards, self.key, self.write, self.suffix

        def write_shard(item: tuple[int, Any]) -> int:
            index, rows = item
            rows = sorted(rows, key=key)
            return write(shard_name(prefix, index, n, suffix), rows)

        return (pcoll
                | "Key by shard" >> beam.Map(lambda e: (shard_of(key(e), n), e))
                | "Group shards" >> beam.GroupByKey()
                | "Write shard" >> beam.Map(write_shard))


def doc_key(doc: dict[str, Any]) -> str:
    return f"{doc['source']}\x00{doc['id']}"


def rejected_key(rec: dict[str, Any]) -> str:
    return f"{rec['file']}\x00{rec['line']:012d}\x00{rec['reason']}"


def write_documents(pcoll, output_dir: str, num_shards: int, schema: pa.Schema = DOC_SCHEMA,
                    label: str = "Write documents"):
    """Documents -> ``OUTPUT/part-*.parquet``; returns a PCollection of rows written per file."""
    return pcoll | label >> WriteShards(f"{output_dir.rstrip('/')}/part", num_shards, doc_key,
                                        lambda path, rows: write_parquet_file(path, rows, schema), ".parquet")


def write_side_records(pcoll, output_dir: str, folder: str, num_shards: int = 1,
                       key: Callable[[Any], str] = rejected_key, label: str | None = None):
    """Rejected/removed records -> ``OUTPUT/<folder>/part-*.jsonl`` (JSON Lines with ``reason``)."""
    return pcoll | (label or f"Write {folder}") >> WriteShards(
        f"{output_dir.rstrip('/')}/{folder}/part", num_shards, key, write_jsonl_file, ".jsonl")
