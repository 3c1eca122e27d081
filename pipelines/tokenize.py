"""The tokenize stage: curated documents -> memory-mappable token shards per source.

    python -m pipelines.tokenize --input work/dedup --output work/tokens \
        --tokenizer work/tokenizer/tokenizer.json [--num-shards 4] [--batch-size 256] [Beam options]

Documents are encoded in batches (``encode_batch``), each followed by ``<|endoftext|>``.
Each input split (``pipelines/splits.py``) writes its own shards, one per (domain, source)
it holds, in input order, rolling over at ``--part-mb`` of tokens: token arrays never go
through a shuffle, memory is one split's open shards, and the same input gives the same
bytes on any runner or worker count.

Output (the shard format is ``mixtures/shards.py``)::

    OUTPUT/<domain>/<source>/part-<split>-<roll>.tokens.npy     token ids (uint16 if the vocabulary fits,
                                                                else uint32)
    OUTPUT/<domain>/<source>/part-<split>-<roll>.docs.npy       document boundaries (int64, n_docs + 1)
    OUTPUT/<domain>/<source>/part-<split>-<roll>.index.parquet  per document: source, id, UTF-8 bytes
    OUTPUT/removed/part-*.jsonl                                 documents not tokenized, with ``reason``
    OUTPUT/tokenizer.json                                       the tokenizer used (a copy)
    OUTPUT/stats.json                                           input == output + removed; per-source
                                                                docs/tokens/bytes; tokenizer sha256, vocab

Sources are kept apart per domain label as well: the same source name can hold documents
of both sides (BBC News: business articles are domain, the rest general), and the mixer
must be able to weight them separately.

A document whose text encodes to no token at all is removed as ``empty_tokenization``;
records without a string ``text``/``id``/``source`` as ``missing_field``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from core.documents import stage_row_problem
from mixtures.shards import DOCS_SUFFIX, INDEX_SUFFIX, TOKENS_SUFFIX, doc_index_bytes, npy_bytes, token_dtype
from mixtures.tokenizer import bos_ids, encode_documents, eos_id
from pipelines.io import InputError, Rejected, prepare_output_dir, snippet
from pipelines.options import fail, parse, run_stage, stage_inputs, stage_parser, writes_output
from pipelines.splits import (
    JsonlPart,
    Progress,
    ReadSplits,
    SplitCounts,
    accepted,
    auto_split_mb,
    describe_inputs,
    read_split,
)
from pipelines.stats import WriteStats

STAGE = "tokenize"
REMOVED = "removed"
TOKENIZER_FILE = "tokenizer.json"
DEFAULT_BATCH = 256  # documents per encode_batch call
COLUMNS = ("id", "source", "domain", "text")  # what tokenizing reads of a curated row


def safe_name(name: str) -> str:
    """A directory name for a source or domain name, one-to-one (the stats map one to the other).

    A name of ``[A-Za-z0-9._-]`` that does not start with a dot is kept; any other (spaces, slashes,
    ``..``, empty) becomes its safe characters plus a hash of the name, so that two sources never
    share a directory (their shards would overwrite each other) and none escapes the output.
    """
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name):
        return name
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:64] or "unnamed"
    return f"{readable}-{hashlib.sha1(name.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


def source_dir(domain: str, source: str) -> str:
    """``<domain>/<source>``: where a source's shards go, relative to the output directory."""
    return f"{safe_name(domain)}/{safe_name(source)}"


def to_slim_document(record: dict[str, Any], path: str, line: int) -> dict[str, str] | Rejected:
    """Keep what tokenizing needs (id, source, domain, text) of a curated record."""
    problem = stage_row_problem(record)
    if problem:
        return Rejected(problem, path, line, snippet(json.dumps(record, default=str)[:2048]))
    for field in ("id", "source"):
        if not isinstance(record.get(field), str):
            return Rejected("missing_field", path, line, snippet(json.dumps(record, default=str)[:2048]))
    return {"id": record["id"], "source": record["source"], "domain": str(record.get("domain") or ""),
            "text": record["text"]}


class SourceShard:
    """The tokens of one (domain, source) inside one split, written as shards that roll over at
    ``part_tokens`` tokens (the npy header needs the length, so a shard is held until written)."""

    def __init__(self, output: str, split, domain: str, source: str, dtype: np.dtype, part_tokens: int):
        self.where = source_dir(domain, source)
        self.base = f"{output.rstrip('/')}/{self.where}"
        self.split, self.domain, self.source, self.dtype, self.part_tokens = split, domain, source, dtype, part_tokens
        self.docs: list[np.ndarray] = []
        self.ids: list[str] = []
        self.n_bytes: list[int] = []
        self.tokens = self.roll = 0
        self.total = {"dir": self.where, "source": source, "domain": domain, "shards": 0, "docs": 0, "tokens": 0,
                      "bytes": 0}

    def add(self, doc_id: str, n_bytes: int, ids: np.ndarray) -> None:
        self.docs.append(ids)
        self.ids.append(doc_id)
        self.n_bytes.append(n_bytes)
        self.tokens += ids.size
        if self.tokens >= self.part_tokens:
            self.flush()

    def flush(self) -> None:
        if not self.docs:
            return
        tokens = np.concatenate(self.docs).astype(self.dtype, copy=False)
        offsets = np.zeros(len(self.docs) + 1, dtype=np.int64)
        np.cumsum([d.size for d in self.docs], out=offsets[1:])
        prefix = f"{self.base}/part-{self.split.name}-{self.roll:03d}"
        _create(prefix + TOKENS_SUFFIX, npy_bytes(tokens))
        _create(prefix + DOCS_SUFFIX, npy_bytes(offsets))
        _create(prefix + INDEX_SUFFIX, doc_index_bytes([self.source] * len(self.ids), self.ids, self.n_bytes))
        t = self.total
        t["shards"] += 1
        t["docs"] += len(self.docs)
        t["tokens"] += int(tokens.size)
        t["bytes"] += int(sum(self.n_bytes))
        self.docs, self.ids, self.n_bytes, self.tokens = [], [], [], 0
        self.roll += 1


class TokenizeSplit(beam.DoFn):
    """One curated split -> its token shards per (domain, source), removals, and counts.

    Main output: ``(count key, n)`` pairs; ``sources``: ``(dir, counts)`` per source shard set.
    """

    def __init__(self, tokenizer_json: str, output: str, batch_size: int, part_mb: float):
        self.tokenizer_json, self.output, self.batch_size, self.part_mb = tokenizer_json, output, batch_size, part_mb

    def setup(self):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_str(self.tokenizer_json)
        self.eos = eos_id(self.tok)
        self.bos = bos_ids(self.tok)  # a pretrained base's BOS convention ([] for the project's tokenizers)
        self.dtype = token_dtype(self.tok.get_vocab_size())
        self.part_tokens = max(1, int(self.part_mb * (1 << 20)) // self.dtype.itemsize)
        self.progress = Progress(STAGE)

    def process(self, split):
        counts = SplitCounts(STAGE)
        removed = JsonlPart(self.output, split, REMOVED)
        shards: dict[tuple[str, str], SourceShard] = {}
        batch: list[dict[str, str]] = []

        def encode(batch):
            try:
                arrays = encode_documents(self.tok, [d["text"] for d in batch], self.eos, self.dtype, self.bos)
            except Exception:  # one bad document must not cost the batch: encode one by one
                arrays = []
                for d in batch:
                    try:
                        arrays.append(encode_documents(self.tok, [d["text"]], self.eos, self.dtype, self.bos)[0])
                    except Exception as exc:
                        arrays.append(exc)
            for doc, ids in zip(batch, arrays):
                reason = (f"record_error:{type(ids).__name__}" if isinstance(ids, Exception)
                          else "empty_tokenization" if ids.size == 1 + len(self.bos) else None)  # nothing but BOS/EOS
                if reason:
                    removed.write({"reason": reason, "source": doc["source"], "id": doc["id"],
                                   "raw": snippet(doc["text"])})
                    counts.add("removed/" + reason)
                    counts.add_source(doc["source"], "removed/" + reason)
                    continue
                key = (doc["domain"], doc["source"])
                shard = shards.get(key)
                if shard is None:
                    shard = shards[key] = SourceShard(self.output, split, *key, self.dtype, self.part_tokens)
                shard.add(doc["id"], len(doc["text"].encode("utf-8", "surrogatepass")), ids)

        for _, doc in accepted(read_split(split, to_slim_document, STAGE, columns=list(COLUMNS)), counts, removed):
            batch.append(doc)
            if len(batch) >= self.batch_size:
                encode(batch)
                batch = []
        if batch:
            encode(batch)
        removed.close()
        for shard in shards.values():
            shard.flush()
            counts.add("output", shard.total["docs"])
            counts.add_source(shard.source, "output", shard.total["docs"])
            counts.add("tokens", shard.total["tokens"])
            yield beam.pvalue.TaggedOutput("sources", (shard.where, shard.total))
        self.progress.done(split, counts.counts["input"])
        yield from counts.pairs()


def _create(path: str, payload: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(payload)


def merge_source_counts(parts: Any) -> dict[str, Any]:
    """Sum the per-shard counts of one source directory (order-free, usable as a combiner)."""
    total: dict[str, Any] = {"shards": 0, "docs": 0, "tokens": 0, "bytes": 0}
    for p in parts:
        for k in ("shards", "docs", "tokens", "bytes"):
            total[k] += p[k]
        total.update({k: p[k] for k in ("source", "domain") if k in p})
    return total


def removed_key(rec: dict[str, Any]) -> str:
    return f"{rec.get('source', '')}\x00{rec.get('id', '')}\x00{rec.get('file', '')}\x00{rec.get('line', 0):012d}"


def build_parser():
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--input", action="append", required=True,
                        help="curated stage directory (its part-*.parquet) or Parquet glob; repeatable")
    parser.add_argument("--tokenizer", required=True, help="tokenizer.json (or the directory holding it)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="documents per encode_batch call")
    return parser


def tokenizer_info(path: str) -> tuple[str, dict[str, Any]]:
    """The tokenizer's JSON text and what stats.json records about it."""
    from tokenizers import Tokenizer

    if not path.endswith(".json") and FileSystems.get_scheme(path) is None:
        path = f"{path.rstrip('/')}/{TOKENIZER_FILE}"
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            raw = f.read()
        tok = Tokenizer.from_str(raw.decode("utf-8"))
    except Exception as exc:
        raise InputError(f"cannot load tokenizer {path!r}: {exc}") from exc
    vocab = tok.get_vocab_size()
    info = {"file": TOKENIZER_FILE, "from": path, "sha256": hashlib.sha256(raw).hexdigest(), "vocab_size": vocab,
            "eos_id": eos_id(tok), "dtype": token_dtype(vocab).name}
    if bos_ids(tok):  # (only a pretrained base's tokenizer has one: the project's stats stay as they were)
        info["bos_ids"] = bos_ids(tok)
    return raw.decode("utf-8"), info


def prepare_token_output(output: str, tokenizer_json: str) -> None:
    """Clear a previous run (Parquet/stats/removed via ``prepare_output_dir``, plus token shards)
    and copy the tokenizer in."""
    prepare_output_dir(output, [REMOVED])
    stale = []
    for suffix in (TOKENS_SUFFIX, DOCS_SUFFIX, INDEX_SUFFIX):
        pattern = FileSystems.join(output, "*", "*", f"part-*{suffix}")
        stale += [m.path for m in FileSystems.match([pattern])[0].metadata_list]
    if stale:
        FileSystems.delete(stale)
    _create(FileSystems.join(output, TOKENIZER_FILE), tokenizer_json.encode("utf-8"))


def build(pipeline: beam.Pipeline, args, files: list[str], tokenizer_json: str, info: dict[str, Any]) -> None:
    out = (pipeline
           | "Splits" >> ReadSplits(files, args.split_mb)
           | "Tokenize splits" >> beam.ParDo(TokenizeSplit(tokenizer_json, args.output, args.batch_size, args.part_mb))
           .with_outputs("sources", main="counts"))
    sources = (out.sources
               | "Sum per source" >> beam.CombinePerKey(merge_source_counts)
               | "Sources" >> beam.combiners.ToDict()
               | "Sort sources" >> beam.Map(lambda d: dict(sorted(d.items()))))
    extra = {"sources": sources, "tokenizer": pipeline | "Tokenizer info" >> beam.Create([info])}
    out.counts | "Stats" >> WriteStats(STAGE, args.output, extra=extra)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args, options = parse(build_parser(), argv)
    if args.batch_size < 1:
        fail("--batch-size must be >= 1")
    try:
        files = stage_inputs(args.input, options)
        tokenizer_json, info = tokenizer_info(args.tokenizer)
        if writes_output(options):
            total = describe_inputs(STAGE, files)
            args.split_mb = auto_split_mb(args.split_mb, total)
            prepare_token_output(args.output, tokenizer_json)
    except InputError as exc:
        fail(str(exc))
    return run_stage(STAGE, lambda p: build(p, args, files, tokenizer_json, info), options, args.output)


if __name__ == "__main__":
    main()
