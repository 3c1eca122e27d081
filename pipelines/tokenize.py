"""The tokenize stage: curated documents -> memory-mappable token shards per source.

    python -m pipelines.tokenize --input work/dedup --output work/tokens \
        --tokenizer work/tokenizer/tokenizer.json [--num-shards 4] [--batch-size 256] [Beam options]

Documents are encoded in batches (``encode_batch``), each followed by ``<|endoftext|>``.
A source's documents go to ``--num-shards`` shards by a stable hash of their id and are
sorted by id inside a shard, so the same input gives the same bytes on any runner.

Output (the shard format is ``mixtures/shards.py``)::

    OUTPUT/<domain>/<source>/part-0000i-of-0000n.tokens.npy     token ids (uint16 if the vocabulary fits,
                                                                else uint32)
    OUTPUT/<domain>/<source>/part-0000i-of-0000n.docs.npy       document boundaries (int64, n_docs + 1)
    OUTPUT/<domain>/<source>/part-0000i-of-0000n.index.parquet  per document: source, id, UTF-8 bytes
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

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from mixtures.shards import DOCS_SUFFIX, INDEX_SUFFIX, TOKENS_SUFFIX, doc_index_bytes, npy_bytes, token_dtype
from mixtures.tokenizer import encode_documents, eos_id
from pipelines.io import InputError, Rejected, expand_inputs, prepare_output_dir, shard_of, snippet
from pipelines.options import parse, run_stage, stage_parser
from pipelines.stats import WriteStats, removed_reason, tally
from pipelines.transforms import REJECTED, ReadFiles, write_side_records

STAGE = "tokenize"
REMOVED = "removed"
TOKENIZER_FILE = "tokenizer.json"
DEFAULT_BATCH = 256  # documents per encode_batch call


def safe_name(name: str) -> str:
    """Path-safe version of a source or domain name (the stats map one to the other)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def source_dir(domain: str, source: str) -> str:
    """``<domain>/<source>``: where a source's shards go, relative to the output directory."""
    return f"{safe_name(domain or 'unlabeled')}/{safe_name(source)}"


def to_slim_document(record: dict[str, Any], path: str, line: int) -> dict[str, str] | Rejected:
    """Keep what tokenizing needs (id, source, domain, text) of a curated record."""
    for field in ("id", "source", "text"):
        if not isinstance(record.get(field), str):
            return Rejected("missing_field", path, line, snippet(json.dumps(record, default=str)[:2048]))
    return {"id": record["id"], "source": record["source"], "domain": str(record.get("domain") or ""),
            "text": record["text"]}


class EncodeBatch(beam.DoFn):
    """A batch of documents -> ``((domain, source, shard), (id, n_bytes, token bytes))`` per document.

    Token ids travel as raw bytes of the shard dtype (cheap to encode between stages).
    """

    def __init__(self, tokenizer_json: str, num_shards: int):
        self.tokenizer_json, self.num_shards = tokenizer_json, num_shards

    def setup(self):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_str(self.tokenizer_json)
        self.eos = eos_id(self.tok)
        self.dtype = token_dtype(self.tok.get_vocab_size())

    def process(self, batch: list[dict[str, str]]):
        arrays = encode_documents(self.tok, [d["text"] for d in batch], self.eos, self.dtype)
        for doc, ids in zip(batch, arrays):
            if ids.size == 1:  # nothing but the EOS we appended
                yield beam.pvalue.TaggedOutput(REMOVED, {"reason": "empty_tokenization", "source": doc["source"],
                                                         "id": doc["id"], "raw": snippet(doc["text"])})
                continue
            key = (doc["domain"], doc["source"], shard_of(doc["id"], self.num_shards))
            yield key, (doc["id"], len(doc["text"].encode("utf-8", "surrogatepass")), ids.tobytes())


def _create(path: str, payload: bytes) -> None:
    with FileSystems.create(path) as f:
        f.write(payload)


def write_source_shard(item: tuple[tuple[str, str, int], Any], output: str, num_shards: int,
                       dtype_name: str) -> dict[str, Any]:
    """Write one ``(domain, source, shard)`` group as tokens + docs + index files; returns its counts."""
    (domain, source, index), rows = item
    rows = sorted(rows, key=lambda r: (r[0], r[2]))
    dtype = np.dtype(dtype_name)
    docs = [np.frombuffer(r[2], dtype=dtype) for r in rows]
    tokens = np.concatenate(docs)
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum([d.size for d in docs], out=offsets[1:])
    n_bytes = [r[1] for r in rows]
    where = source_dir(domain, source)
    prefix = f"{output.rstrip('/')}/{where}/part-{index:05d}-of-{num_shards:05d}"
    _create(prefix + TOKENS_SUFFIX, npy_bytes(tokens))
    _create(prefix + DOCS_SUFFIX, npy_bytes(offsets))
    _create(prefix + INDEX_SUFFIX, doc_index_bytes([source] * len(rows), [r[0] for r in rows], n_bytes))
    return {"dir": where, "source": source, "domain": domain, "shards": 1, "docs": len(rows),
            "tokens": int(tokens.size), "bytes": int(sum(n_bytes))}


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
    parser.set_defaults(num_shards=4)
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
    return raw.decode("utf-8"), info


def prepare_token_output(output: str, tokenizer_json: str) -> None:
    """Clear a previous run (Parquet/stats/removed via ``prepare_output_dir``, plus token shards)
    and copy the tokenizer in."""
    prepare_output_dir(output, [REMOVED])
    stale = []
    for suffix in (TOKENS_SUFFIX, DOCS_SUFFIX, INDEX_SUFFIX):
        pattern = FileSystems.join(output, "*", "*", f"part-*-of-*{suffix}")
        stale += [m.path for m in FileSystems.match([pattern])[0].metadata_list]
    if stale:
        FileSystems.delete(stale)
    _create(FileSystems.join(output, TOKENIZER_FILE), tokenizer_json.encode("utf-8"))


def build(pipeline: beam.Pipeline, args, files: list[str], tokenizer_json: str, info: dict[str, Any]) -> None:
    read = pipeline | "Read" >> ReadFiles(files, to_slim_document)
    docs, rejected = read.records, read[REJECTED]
    encoded = (docs
               | "Batch" >> beam.BatchElements(min_batch_size=args.batch_size, max_batch_size=args.batch_size)
               | "Encode" >> beam.ParDo(EncodeBatch(tokenizer_json, args.num_shards)).with_outputs(REMOVED,
                                                                                                  main="tokens"))
    write = functools.partial(write_source_shard, output=args.output, num_shards=args.num_shards,
                              dtype_name=info["dtype"])
    written = (encoded.tokens
               | "Group shards" >> beam.GroupByKey()
               | "Write shards" >> beam.Map(write))
    removed = (encoded[REMOVED], rejected) | "All removed" >> beam.Flatten()
    write_side_records(removed, args.output, REMOVED, key=removed_key, label="Write removed")
    sources = (written
               | "By source" >> beam.Map(lambda r: (r["dir"], r))
               | "Sum per source" >> beam.CombinePerKey(merge_source_counts)
               | "Sources" >> beam.combiners.ToDict()
               | "Sort sources" >> beam.Map(lambda d: dict(sorted(d.items()))))
    pairs = (
        tally(docs, STAGE, "input", label="Count read docs"),
        tally(rejected, STAGE, "input", label="Count read rejects"),
        tally(written, STAGE, "output", weight=lambda r: r["docs"], label="Count written"),
        tally(written, STAGE, "tokens", weight=lambda r: r["tokens"], label="Count tokens"),
        tally(removed, STAGE, removed_reason, label="Count reasons"),
    )
    extra = {"sources": sources, "tokenizer": pipeline | "Tokenizer info" >> beam.Create([info])}
    pairs | "Merge counts" >> beam.Flatten() | "Stats" >> WriteStats(STAGE, args.output, extra=extra)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args, options = parse(build_parser(), argv)
    if args.batch_size < 1:
        raise SystemExit("error: --batch-size must be >= 1")
    try:
        files = expand_inputs(args.input)
        tokenizer_json, info = tokenizer_info(args.tokenizer)
        prepare_token_output(args.output, tokenizer_json)
    except InputError as exc:
        raise SystemExit(f"error: {exc}") from None
    return run_stage(STAGE, lambda p: build(p, args, files, tokenizer_json, info), options, args.output)


if __name__ == "__main__":
    main()
