"""The dedup stage: exact and MinHash-LSH near-duplicate removal, one survivor per cluster.

    python -m pipelines.dedup --input work/filter/finance --input work/filter/general \
        --output work/dedup [--threshold 0.8] [--ngram 5] [--num-perm 128] [--no-verify] \
        [--cross-source] [--source-priority a,b,c] [--cc-rounds 2] \
        [--line-dedup [--line-min-docs 2] [--line-min-words 5]] [Beam options]

Graph (every step is a keyed shuffle of ids, fingerprints, edges or labels; no document text
ever goes through one)::

    splits --Fingerprint (per split)--> ((source, id), packed handle + rank + exact key + band keys)
      ids:        GroupByKey(source, id): the first occurrence goes on, others -> "duplicate_id"
      exact:      GroupByKey(scope, exact key): min node survives, others -> (node, keeper, "exact")
      buckets:    GroupByKey(scope, band, 2-byte key prefix) over exact survivors, values = rest of
                  the key + handle (14 bytes); inside, a star of edges to each bucket's min handle
      resolve:    the candidates' rows are re-read per split for their node (and shingle set);
                  (default) verify: keep the edges with exact Jaccard >= threshold
      components: large-star/small-star rounds + union-find of the residual -> (node, root, "near")
      follow:     exact duplicates take their keeper's root
      (--line-dedup) lines: labels grouped by split; each split is re-read and every survivor sends
                  (8-byte line key, 18-byte rank + id hash + handle) per distinct line of >= 5 words;
                  GroupByKey(line key): a line in >= --line-min-docs documents is kept by the min
                  value, the others get (split, (row, line key)) drops; the top 20 keys -> side input
      write:      labels (and line drops) grouped by split; each split is re-read and its survivors
                  written in input order to train-<split>-*.parquet (repeated lines dropped; a
                  document left without a line of >= 5 words is removed), the removed ones to
                  duplicates/; the keepers of the top lines send those lines' text to stats.json

A *handle* is a document's position (file, split, line) packed in 64 bits: what the big shuffles
carry (8 bytes instead of a ~60-character node string), so that the LSH step costs ~30 bytes per
band per document in memory.

A *node* is the string ``"<rank>\\0<source>\\0<id>\\0<split>:<line>"``, so "the smallest node" is
the smallest (source rank, source, id, then position in the input): the order of
``--source-priority``, then domain sources, then general ones. The *scope* is the source, or
one global scope with ``--cross-source`` (the same article in a finance feed and a web dump is
kept once, in the higher-priority source). Kept documents keep every input column.

Line dedup runs on the survivors of document dedup, in the same final pass (a line is never kept
only in a document that document dedup removes), within the same scope; which document keeps a
line is the smallest (source rank, 64-bit hash of (source, id)): the ``--source-priority`` order,
then C4's "consistent but unbiased" choice, whatever the input order or runner. Table lines (rows,
numeric lines and table headings, ``filters/tables.py``) are never line-deduplicated: a header or row
such as ``iPhone (1) | $51,982 | $61,104`` belongs to every filing that has it. Design and scale
notes: docs/dedup.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa

from core.documents import stage_row_problem
from filters.exact import (
    MIN_LINE_DOCS,
    MIN_LINE_WORDS,
    document_lines,
    has_dedup_line,
    line_keys,
    remove_repeated_lines,
)
from filters.minhash import (
    BAND_KEY_BYTES,
    DEFAULT_NGRAM,
    DEFAULT_NUM_PERM,
    DEFAULT_THRESHOLD,
    MinHashConfig,
    analyze,
    jaccard,
    permutations,
    word_char_table,
)
from pipelines.components import ConnectedComponents
from pipelines.io import InputError, Rejected, prepare_output_dir, snippet
from pipelines.options import fail, parse, run_stage, stage_inputs, stage_parser, stage_schema, writes_output
from pipelines.splits import (
    JsonlPart,
    ParquetParts,
    Progress,
    ReadSplits,
    SplitCounts,
    accepted,
    auto_split_mb,
    describe_inputs,
    read_split,
    reject_bad_rows,
)
from pipelines.stats import WriteStats, tally

STAGE = "dedup"
DUPLICATES = "duplicates"
REASONS = {"exact": "exact_duplicate", "near": "near_duplicate", "duplicate_id": "duplicate_id",
           "line": "empty_after_line_dedup"}
DUPLICATE_SCHEMA = pa.schema([(name, pa.string()) for name in ("id", "source", "cluster", "cluster_source",
                                                              "reason")])
DEFAULT_CC_ROUNDS = 2  # then an exact union-find over the (small) residual; see pipelines/components.py
COUNTS = ("candidate_edges", "verified_edges", "cc_unconverged_nodes", "cc_residual_edges")
LINE_COUNTS = ("lines_removed", "repeated_lines", "documents_with_lines_removed")  # with --line-dedup
TOP_LINES = 20  # most repeated lines listed in stats.json, with their text
TOP_LINE_CHARS = 200  # of each listed line's text
DEFAULT_CLUSTER_ALARM = 1000  # a near-dup cluster this large is usually a transitive-closure chain
RESIDUAL_ALARM = 1_000_000  # edges for the one-worker union-find finish (~100 MB of node strings)
HISTOGRAM_EDGES = (2, 3, 5, 9, 17, 33, 65, 129, 257, 513, 1025, 10_001, 100_001)
SEP = "\x00"
BUCKET_PREFIX = 2  # band-key bytes that name a coarse bucket: 65,536 per (scope, band)
SMALL_BUCKET = 8  # LSH buckets up to this size emit every pair (<= 28 edges), larger ones a star
COLUMNS = ("id", "source", "domain", "text")  # what fingerprinting reads of a row
log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- pure helpers

def source_rank(source: str, domain: str, priority: Sequence[str]) -> int:
    """Smaller is preferred: listed sources in order, then domain sources, then general ones."""
    if source in priority:
        return priority.index(source)
    return len(priority) + (0 if domain == "domain" else 1)


def node_key(doc: dict[str, Any], priority: Sequence[str] = (), where: str = "") -> str:
    """The document's node: its sort order is the survivor order (rank, source, id, position);
    ``where`` is ``"<split>:<line>"``, where the document is in the input."""
    return make_node(source_rank(doc["source"], doc.get("domain") or "", priority), doc["source"], doc["id"], where)


def split_node(node: str) -> tuple[str, str]:
    """``(source, id)`` of a node."""
    rest, _ = node.rsplit(SEP, 1)
    _, source, doc_id = rest.split(SEP, 2)
    return source, doc_id


def node_location(node: str) -> tuple[str, int]:
    """``(split name, line)`` of a node: where to find the document again."""
    split, line = node.rsplit(SEP, 1)[1].rsplit(":", 1)
    return split, int(line)


# A *handle* is a document's position as one 64-bit integer: input file index (20 bits), split of
# the file (14 bits), line or row in the file (30 bits). What the big shuffles carry instead of nodes.
HANDLE = ">Q"  # format strings, not struct.Struct: the module is pickled by value when run as __main__
HANDLE_BYTES = 8
_FILE_BITS, _PART_BITS, _LINE_BITS = 20, 14, 30


def handle_of(split_name: str, line: int) -> int:
    file_index, part = (int(x) for x in split_name.split("-"))
    if file_index >> _FILE_BITS or part >> _PART_BITS or line >> _LINE_BITS:
        raise ValueError(f"dedup supports up to 2^20 input files, 2^14 splits per file and 2^30 rows per file: "
                         f"got file {file_index}, split {part}, row {line} (use more, smaller files)")
    return (file_index << (_PART_BITS + _LINE_BITS)) | (part << _LINE_BITS) | line


def handle(split, line: int) -> int:
    return handle_of(split.name, line)


def handle_location(h: int) -> tuple[str, int]:
    """``(split name, line)`` of a handle."""
    file_index, part = h >> (_PART_BITS + _LINE_BITS), (h >> _LINE_BITS) & ((1 << _PART_BITS) - 1)
    return f"{file_index:05d}-{part:04d}", h & ((1 << _LINE_BITS) - 1)


def make_node(rank: int, source: str, doc_id: str, where: int | str) -> str:
    """The node string; ``where`` is ``"<split>:<line>"`` or a handle."""
    if isinstance(where, int):
        where = "{}:{}".format(*handle_location(where))
    return f"{rank:04d}{SEP}{source}{SEP}{doc_id}{SEP}{where}"


_FP = ">QH16s"  # handle, source rank, exact hash
_FP_BYTES = struct.calcsize(_FP)


def pack_fingerprint(h: int, rank: int, exact: bytes, keys: list[bytes]) -> bytes:
    """What each document sends through the id shuffle: one bytes object (handle, rank, exact
    hash, band keys), ~150 bytes, instead of a tuple of Python objects."""
    return struct.pack(_FP, h, rank, exact) + b"".join(keys)


def unpack_fingerprint(packed: bytes) -> tuple[int, int, bytes, bytes]:
    h, rank, exact = struct.unpack_from(_FP, packed)
    return h, rank, exact, packed[_FP_BYTES:]


_KEYS_LEN = ">H"


def exact_value(keys: bytes, node: str) -> bytes:
    """What each first-of-id document sends through the exact shuffle: its band keys and its node."""
    return struct.pack(_KEYS_LEN, len(keys)) + keys + node.encode("utf-8", "surrogatepass")


def split_exact_value(value: bytes) -> tuple[bytes, str]:
    """``(band keys, node)`` of :func:`exact_value`."""
    (n,) = struct.unpack_from(_KEYS_LEN, value)
    start = 2
    return value[start:start + n], value[start + n:].decode("utf-8", "surrogatepass")


def histogram(sizes: Iterable[int], edges: Sequence[int] = HISTOGRAM_EDGES) -> dict[str, int]:
    """Cluster sizes binned as ``"2"``, ``"3-4"``, ``"5-8"`` ... (documents per cluster)."""
    counts: dict[str, int] = {}
    bins = list(zip(edges, list(edges[1:]) + [None]))
    for size in sizes:
        for lo, hi in bins:
            if size >= lo and (hi is None or size < hi):
                label = f"{lo}+" if hi is None else (str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}")
                counts[label] = counts.get(label, 0) + 1
                break
    return {label: counts[label] for label in sorted(counts, key=lambda s: int(s.split("-")[0].rstrip("+")))}


def verification_set(shingles: np.ndarray) -> bytes:
    """The low 32 bits of each shingle hash, sorted unique, as bytes: what --verify shuffles.

    Half the bytes of the 64-bit hashes; a false match between two distinct shingles is a
    2^-32 event, so the Jaccard computed on these sets is exact for documents of any
    realistic length (~1e-4 expected spurious matches between two 10,000-word documents).
    """
    return np.unique((shingles & np.uint64(0xFFFFFFFF)).astype(np.uint32)).tobytes()


@dataclass(frozen=True)
class LineDedup:
    """``--line-dedup`` settings: a line of at least ``min_words`` normalized words that occurs in at
    least ``min_docs`` surviving documents of a scope is kept in one of them only."""

    min_docs: int = MIN_LINE_DOCS
    min_words: int = MIN_LINE_WORDS
    cross_source: bool = False

    def scope(self, source: str | None) -> str:
        """The same scopes as document dedup: the source, or one global scope."""
        return "*" if self.cross_source else (source or "")


_LINE_DOC = ">H8sQ"  # source rank, 64-bit hash of (source, id), handle: 18 bytes, compared as bytes


def line_doc_value(rank: int, source: str, doc_id: str, h: int) -> bytes:
    """What a document sends with each of its line keys. The smallest value keeps the line: bytes
    order is (rank, id hash, handle) order, so the preferred source first, then a choice that depends
    on (source, id) only (C4 takes the min hash of the URL: "consistent, but unbiased"); the handle
    only breaks a 64-bit hash tie."""
    digest = hashlib.blake2b(f"{source}{SEP}{doc_id}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return struct.pack(_LINE_DOC, rank, digest, h)


def line_doc_handle(value: bytes) -> int:
    return struct.unpack(_LINE_DOC, value)[2]


# ---------------------------------------------------------------------------- Beam steps

def as_dedup_row(record: dict[str, Any], path: str, line: int) -> dict[str, Any] | Rejected:
    """What fingerprinting reads of a row: id, source and domain as strings, and its text; a row
    without string text is rejected (:func:`checked_row`)."""
    checked = checked_row(record, path, line)
    if isinstance(checked, Rejected):
        return checked
    return {"id": record.get("id") or f"{path.rsplit('/', 1)[-1]}:{line}",
            "source": record.get("source") or "", "domain": str(record.get("domain") or ""),
            "text": record["text"]}


def checked_row(record: dict[str, Any], path: str, line: int) -> dict[str, Any] | Rejected:
    """A whole row, or its rejection (both passes over a split must agree on which rows are documents)."""
    problem = stage_row_problem(record)
    if problem:
        return Rejected(problem, path, line, snippet(json.dumps(record, default=str)[:2048]))
    return record


class FingerprintSplit(beam.DoFn):
    """One input split -> ``((source, id), packed fingerprint)`` per document (:func:`pack_fingerprint`).

    Fingerprints are computed in batches (``fingerprint_batch``); unreadable rows go to
    ``rejected/``. Also yields the split's count pairs on ``counts``.
    """

    BATCH = 256

    def __init__(self, config: MinHashConfig, cross_source: bool, priority: Sequence[str], output: str):
        self.config, self.cross_source, self.priority, self.output = config, cross_source, tuple(priority), output

    def setup(self):
        word_char_table()
        permutations(self.config.num_perm, self.config.seed)
        self.progress = Progress(STAGE)

    def _fingerprints(self, texts: list[str]) -> list:
        """Fingerprints of a batch; if the batch fails, one by one (an Exception in place of a bad one)."""
        try:
            return self.config.fingerprint_batch(texts)
        except Exception:
            out = []
            for text in texts:
                try:
                    out.append(self.config.fingerprint_batch([text])[0])
                except Exception as exc:
                    out.append(exc)
            return out

    def _emit(self, split, batch: list[tuple[int, dict[str, Any]]], counts: SplitCounts):
        for (line, doc), fp in zip(batch, self._fingerprints([doc["text"] for _, doc in batch])):
            h = handle(split, line)
            if isinstance(fp, Exception):  # cannot be compared: kept, as a duplicate of nothing, and counted
                counts.add(f"fingerprint_error:{type(fp).__name__}")
                exact, keys = hashlib.blake2b(struct.pack(">Q", h), digest_size=16).digest(), []
            else:
                exact, _, keys = fp
            rank = source_rank(doc["source"], doc["domain"], self.priority)
            yield (doc["source"], doc["id"]), pack_fingerprint(h, rank, exact, keys)

    def process(self, split):
        counts = SplitCounts(STAGE)
        rejected = JsonlPart(self.output, split, "rejected")
        batch = []
        for line, doc in accepted(read_split(split, as_dedup_row, STAGE, columns=list(COLUMNS)), counts, rejected):
            batch.append((line, doc))
            if len(batch) >= self.BATCH:
                yield from self._emit(split, batch, counts)
                batch = []
        if batch:
            yield from self._emit(split, batch, counts)
        rejected.close()
        self.progress.done(split, counts.counts["input"])
        for pair in counts.pairs():
            yield beam.pvalue.TaggedOutput("counts", pair)


def first_of_id(cross_source: bool):
    """One (source, id): its first occurrence goes on to exact/near dedup as ``((scope, exact hash),
    packed node + band keys)``, any later one is a ``duplicate_id`` of it."""

    def first(item):
        (source, doc_id), members = item
        first_handle = min(unpack_fingerprint(m)[0] for m in members)
        first_node = None
        for packed in members:
            h, rank, exact, keys = unpack_fingerprint(packed)
            node = make_node(rank, source, doc_id, h)
            if h == first_handle:
                first_node = node
                yield ("*" if cross_source else source, exact), exact_value(keys, node)
        for packed in members:
            h, rank, _, _ = unpack_fingerprint(packed)
            if h != first_handle:
                yield beam.pvalue.TaggedOutput("duplicate_id", (make_node(rank, source, doc_id, h),
                                                                (first_node, "duplicate_id")))

    return first


class CandidateInfo(beam.DoFn):
    """One split with the lines of its candidate documents -> ``(handle, ("s", (node, shingle set)))``.

    Re-reads the split (only id, source, domain, text) instead of shuffling every document's node
    and shingles: only documents in at least one candidate pair pay for it. Without ``--verify``
    the shingle set is empty (only the node is needed).
    """

    def __init__(self, config: MinHashConfig, priority: Sequence[str]):
        self.config, self.priority = config, tuple(priority)

    def setup(self):
        word_char_table()

    def process(self, item):
        _, grouped = item
        splits, wanted = list(grouped["split"]), set(grouped["lines"])
        if not splits or not wanted:
            return
        split = splits[0]
        for line, doc in read_split(split, as_dedup_row, STAGE, columns=list(COLUMNS)):
            if line in wanted and not isinstance(doc, Rejected):
                shingles = b""
                if self.config.verify:
                    shingles = verification_set(analyze(doc["text"], self.config.ngram)[1])
                yield handle(split, line), ("s", (node_key(doc, self.priority, f"{split.name}:{line}"), shingles))


def exact_survivors(item):
    """One exact-hash group: the min node keeps its band keys, every other node is an exact dup.

    Values are :func:`exact_value` (band keys + node). The keeper sends one element per band to its
    coarse bucket ``(scope, band, first BUCKET_PREFIX bytes of the key)`` with the rest of the key
    and its handle as 14 bytes. Two passes over the group (min, then emit) so that memory does not
    grow with its size.
    """
    (scope, _), members = item
    keeper = min(split_exact_value(v)[1] for v in members)
    emitted = False
    for value in members:
        keys, node = split_exact_value(value)
        if node != keeper:
            yield beam.pvalue.TaggedOutput("exact", (node, keeper))
        elif not emitted:
            emitted = True
            h = struct.pack(HANDLE, handle_of(*node_location(node)))
            for band, start in enumerate(range(0, len(keys), BAND_KEY_BYTES)):
                key = keys[start:start + BAND_KEY_BYTES]
                yield (scope, band, key[:BUCKET_PREFIX]), key[BUCKET_PREFIX:] + h


class BucketEdges(beam.DoFn):
    """One coarse bucket -> its LSH buckets (same full band key) -> candidate edges: every pair of a
    small bucket, a star to the min handle in a large one (O(n) edges, not O(n^2)). Edges are
    ``(handle, handle)`` with the smaller second."""

    def __init__(self, alarm: int):
        self.alarm = alarm

    def process(self, item):
        (scope, band, _), values = item
        buckets: dict[bytes, list[int]] = {}
        for v in values:
            buckets.setdefault(v[:-HANDLE_BYTES], []).append(struct.unpack(HANDLE, v[-HANDLE_BYTES:])[0])
        for members in buckets.values():
            if len(members) < 2:
                continue
            members.sort()
            if len(members) <= SMALL_BUCKET:  # every pair: one LSH false positive cannot cut the others off
                for i, a in enumerate(members):
                    for b in members[i + 1:]:
                        yield b, a
            else:
                for h in members[1:]:
                    yield h, members[0]
            yield beam.pvalue.TaggedOutput("bucket_size", len(members))
            if len(members) >= self.alarm:
                log.warning("ALARM: LSH bucket of %d documents (scope %r, band %d, min %s)",
                            len(members), scope, band, handle_location(members[0]))


def _attach_info(item):
    """Handle with its (node, shingles) and candidate edges -> (edge, (handle, node, shingles)) per edge."""
    h, tagged = item
    info = next((value for tag, value in tagged if tag == "s"), None)
    if info is None:
        return
    for tag, edge in tagged:
        if tag == "e":
            yield edge, (h, *info)


class VerifyJaccard(beam.DoFn):
    """One candidate edge with both ends' (node, shingles) -> the edge between the two nodes if the
    exact Jaccard is >= threshold (every candidate edge when ``threshold`` is None: ``--no-verify``)."""

    def __init__(self, threshold: float | None):
        self.threshold = threshold

    def process(self, item):
        edge, ends = item
        info = {h: (node, shingles) for h, node, shingles in ends}
        if len(info) == 2:
            (a, sa), (b, sb) = (info[h] for h in edge)
            if self.threshold is None or jaccard(np.frombuffer(sa, dtype=np.uint32),
                                                 np.frombuffer(sb, dtype=np.uint32)) >= self.threshold:
                yield a, b


def _edge_ends(edge):
    yield edge[0], ("e", edge)
    yield edge[1], ("e", edge)


def follow_keepers(item):
    """Exact dups of a keeper join the keeper's cluster root (the keeper itself if it survived)."""
    keeper, tagged = item
    root = keeper
    for tag, value in tagged:
        if tag == "root":
            root = value
            break
    for tag, value in tagged:
        if tag == "dup":
            yield value, (root, "exact")


class LineKeys(beam.DoFn):
    """One split with the labels of its removed documents -> ``(line key, line_doc_value)`` for each
    distinct line of >= ``min_words`` words of each document that survived document dedup.

    Reads the split once more (id, source, domain, text) rather than shuffling any text; memory is one
    row group plus the split's labels. 26 bytes (27 Beam-encoded) per (document, distinct long line)
    are shuffled.
    """

    def __init__(self, lines: LineDedup, priority: Sequence[str]):
        self.lines, self.priority = lines, tuple(priority)

    def setup(self):
        word_char_table()

    def process(self, item):
        _, grouped = item
        splits = list(grouped["split"])
        if not splits:
            return
        split = splits[0]
        removed = {row for row, _, _ in grouped["labels"]}
        for row, doc in read_split(split, as_dedup_row, STAGE, columns=list(COLUMNS)):
            if isinstance(doc, Rejected) or row in removed:
                continue
            keys = document_lines(doc["text"], self.lines.min_words, self.lines.scope(doc["source"]))
            if keys:
                value = line_doc_value(source_rank(doc["source"], doc["domain"], self.priority), doc["source"],
                                       doc["id"], handle(split, row))
                for key in keys:
                    yield key, value


def repeated_lines(min_docs: int):
    """One line key with the documents that have it -> if they are at least ``min_docs``: a drop
    ``(split name, (row, key))`` for each document but the keeper (the min value), and
    ``(documents, key, keeper handle)`` on ``repeated``. Two passes (count and min, then emit), no list:
    memory does not grow with the number of documents sharing a line."""

    def drops(item):
        key, docs = item
        n, keeper = 0, None
        for value in docs:
            n += 1
            if keeper is None or value < keeper:
                keeper = value
        if n < min_docs:
            return
        for value in docs:
            if value != keeper:
                split, row = handle_location(line_doc_handle(value))
                yield split, (row, key)
        yield beam.pvalue.TaggedOutput("repeated", (n, key, line_doc_handle(keeper)))

    return drops


class TopLines(beam.CombineFn):
    """``(documents, key, keeper handle)`` -> the ``top`` most repeated, by (-documents, key): a
    deterministic order whatever the runner."""

    def __init__(self, top: int = TOP_LINES):
        self.top = top

    def _cut(self, items: list) -> list:
        return sorted(items, key=lambda t: (-t[0], t[1]))[:self.top]

    def create_accumulator(self):
        return []

    def add_input(self, acc, item):
        acc.append(tuple(item))
        return self._cut(acc) if len(acc) > 4 * self.top else acc

    def merge_accumulators(self, accs):
        return self._cut([t for acc in accs for t in acc])

    def extract_output(self, acc):
        return self._cut(acc)


def top_lines_stats(top: list, texts: dict[bytes, tuple[str, str, str]]) -> list[dict[str, Any]]:
    """stats.json's ``top_repeated_lines``: text (of the kept copy, cut at TOP_LINE_CHARS), documents
    that had the line, and the document that keeps it."""
    out = []
    for n, key, _ in top:
        text, source, doc_id = texts.get(key, ("", "", ""))
        out.append({"text": text, "documents": n, "kept": doc_id, "source": source})
    return out


def duplicate_record(doc: dict[str, Any], cluster: str, reason: str) -> dict[str, str]:
    source, doc_id = split_node(cluster)
    return {"id": str(doc.get("id")), "source": str(doc.get("source")), "cluster": doc_id, "cluster_source": source,
            "reason": reason}


class ApplyLabelsAndWrite(beam.DoFn):
    """One split with the labels of its removed documents -> its survivors, in input order.

    The split is read again (every column) and written to ``train-<split>-*.parquet`` without the
    labelled lines; memory is one row group plus the split's labels (and line drops). Main output:
    count pairs; ``clusters``: ``((cluster source, cluster id), 1)`` per removed document.

    With ``lines`` (``--line-dedup``): the split's drops ``(row, line key)`` remove those lines from
    the surviving documents; a document left with no line of ``min_words`` words is removed as
    ``empty_after_line_dedup``. ``top`` (side input, :class:`TopLines`) names the most repeated
    lines and their keepers: a keeper in this split sends the line's text on ``top_lines``.
    """

    def __init__(self, output_dir: str, schema: pa.Schema, part_mb: float, lines: LineDedup | None = None):
        self.output, self.schema, self.part_mb, self.lines = output_dir, schema, part_mb, lines

    def setup(self):
        if self.lines is not None:
            word_char_table()

    def _edit_lines(self, doc: dict[str, Any], drop: set[bytes], top: set[bytes], counts: SplitCounts):
        """``(doc with its dropped lines removed, or None when left empty, [(key, top line text)])``."""
        lines, source = self.lines, doc.get("source")
        scope = lines.scope(source)
        text = doc["text"]
        if drop:
            text, n = remove_repeated_lines(text, lambda key: key not in drop, lines.min_words, scope)
            counts.add("lines_removed", n)
            counts.add_source(source, "lines_removed", n)
            if not has_dedup_line(text, lines.min_words):
                return None, []
            counts.add("documents_with_lines_removed")
            doc = {**doc, "text": text}
        found = []
        if top:
            for line, key in zip(text.split("\n"), line_keys(text, lines.min_words, scope)):
                if key in top:
                    top.discard(key)
                    found.append((key, (line.strip()[:TOP_LINE_CHARS], str(source), str(doc.get("id")))))
        return doc, found

    def process(self, item, top=()):
        _, grouped = item
        splits = list(grouped["split"])
        if not splits:
            return
        split = splits[0]
        labels: dict[int, tuple[str, str]] = {}
        for line, cluster, reason in grouped["labels"]:
            labels[line] = min(labels.get(line, (cluster, reason)), (cluster, reason))
        drops: dict[int, set[bytes]] = {}
        for row, key in grouped.get("lines", ()):
            drops.setdefault(row, set()).add(key)
        keepers: dict[int, set[bytes]] = {}  # row -> keys of top lines it keeps
        for _, key, h in top:
            where, row = handle_location(h)
            if where == split.name:
                keepers.setdefault(row, set()).add(key)
        counts = SplitCounts(STAGE)
        rejected = JsonlPart(self.output, split, "rejected", suffix="-write")  # rows that fail to write
        kept = ParquetParts(self.output, split, self.schema, self.part_mb,
                            on_bad_row=reject_bad_rows(split, counts, rejected))
        dups = ParquetParts(self.output, split, DUPLICATE_SCHEMA, self.part_mb, folder=DUPLICATES,
                            size_of=lambda r: 64, prefix="part")  # ids and names only: never fails
        for line, doc in read_split(split, checked_row, STAGE):
            if isinstance(doc, Rejected):
                continue  # counted (and written to rejected/) by the fingerprint pass
            if line in labels:
                cluster, reason = labels[line]
                record = duplicate_record(doc, cluster, reason)
                dups.write(record, line)
                counts.add("removed/" + REASONS[reason])
                counts.add_source(doc.get("source"), "removed/" + REASONS[reason])
                yield beam.pvalue.TaggedOutput("clusters", ((record["cluster_source"], record["cluster"]), 1))
                continue
            if line in drops or line in keepers:
                edited, found = self._edit_lines(doc, drops.get(line, set()), keepers.get(line, set()), counts)
                for pair in found:
                    yield beam.pvalue.TaggedOutput("top_lines", pair)
                if edited is None:
                    dups.write({"id": str(doc.get("id")), "source": str(doc.get("source")), "cluster": "",
                                "cluster_source": "", "reason": "line"}, line)
                    counts.add("removed/" + REASONS["line"])
                    counts.add_source(doc.get("source"), "removed/" + REASONS["line"])
                    continue
                doc = edited
            kept.write(doc, line)
        counts.add("output", kept.close())
        for source, n in kept.by_source.items():
            counts.add_source(source, "output", n)
        dups.close()
        rejected.close()
        yield from counts.pairs()


class ClusterSummary(beam.CombineFn):
    """(cluster, size) pairs -> {"histogram", "clusters", "largest"} in one pass (one stage)."""

    TOP = 5

    def create_accumulator(self):
        return {}, []

    def add_input(self, acc, item):
        sizes, top = acc
        (source, doc_id), size = item
        sizes[size] = sizes.get(size, 0) + 1
        top.append((size, source, doc_id))
        if len(top) > 4 * self.TOP:
            top[:] = sorted(top, key=lambda t: (-t[0], t[1], t[2]))[:self.TOP]
        return acc

    def merge_accumulators(self, accs):
        sizes: dict[int, int] = {}
        top: list = []
        for acc_sizes, acc_top in accs:
            for k, v in acc_sizes.items():
                sizes[k] = sizes.get(k, 0) + v
            top.extend(acc_top)
        return sizes, sorted(top, key=lambda t: (-t[0], t[1], t[2]))[:self.TOP]

    def extract_output(self, acc):
        sizes, top = acc
        top = sorted(top, key=lambda t: (-t[0], t[1], t[2]))[:self.TOP]
        return {"histogram": histogram([size for size, n in sizes.items() for _ in range(n)]),
                "clusters": sum(sizes.values()),
                "largest": [{"size": size, "kept": doc_id, "source": source} for size, source, doc_id in top]}


def _alarm_cluster(alarm: int):
    def check(item):
        root, size = item
        if size >= alarm:
            log.warning("ALARM: near-duplicate cluster of %d documents kept as %r: check for a "
                        "transitive-closure chain (boilerplate, templates)", size, "/".join(root))
        return item
    return check


def _label_by_split(node: str, cluster: str, reason: str):
    split, line = node_location(node)
    return split, (line, cluster, reason)


def build(pipeline: beam.Pipeline, args, files: list[str], schema: pa.Schema, config: MinHashConfig) -> None:
    priority = tuple(s for s in (args.source_priority or "").split(",") if s)
    splits = pipeline | "Splits" >> ReadSplits(files, args.split_mb)
    by_name = splits | "Key splits" >> beam.Map(lambda s: (s.name, s))

    fp = (splits
          | "Fingerprint" >> beam.ParDo(FingerprintSplit(config, args.cross_source, priority, args.output))
          .with_output_types(Any).with_outputs("counts", main="fingerprints"))
    ids = (fp.fingerprints
           | "Group ids" >> beam.GroupByKey()
           | "First of id" >> beam.FlatMap(first_of_id(args.cross_source)).with_output_types(Any).with_outputs(
               "duplicate_id", main="fingerprints"))
    exact = (ids.fingerprints
             | "Group exact" >> beam.GroupByKey()
             | "Exact survivors" >> beam.FlatMap(exact_survivors).with_output_types(Any).with_outputs(
                 "exact", main="bands"))
    buckets = (exact.bands
               | "Group buckets" >> beam.GroupByKey()
               | "Bucket edges" >> beam.ParDo(BucketEdges(args.cluster_alarm)).with_output_types(Any).with_outputs(
                   "bucket_size", main="edges"))
    # an edge found in several bands arrives several times: one copy each from here on
    candidates = buckets.edges | "Distinct edges" >> beam.Distinct()
    # the candidates' nodes (and shingle sets, to verify) come from re-reading their splits
    wanted = (candidates
              | "Candidate handles" >> beam.FlatMap(lambda e: e)
              | "Distinct handles" >> beam.Distinct()
              | "Handle to split" >> beam.Map(handle_location))
    info = ({"split": by_name, "lines": wanted}
            | "Join candidates" >> beam.CoGroupByKey()
            | "Candidate info" >> beam.ParDo(CandidateInfo(config, priority)))
    edges = ((candidates | "Edge ends" >> beam.FlatMap(_edge_ends), info)
             | "Merge info" >> beam.Flatten()
             | "Group by handle" >> beam.GroupByKey()
             | "Attach info" >> beam.FlatMap(_attach_info)
             | "Group by edge" >> beam.GroupByKey()
             | "Verify Jaccard" >> beam.ParDo(VerifyJaccard(config.threshold if config.verify else None)))
    cc = edges | "Components" >> ConnectedComponents(args.cc_rounds)
    near = cc["labels"] | "Near label" >> beam.Map(lambda kv: (kv[0], (kv[1], "near")))
    exact_labels = ((exact.exact | "Tag dups" >> beam.Map(lambda kv: (kv[1], ("dup", kv[0]))),
                     cc["labels"] | "Tag roots" >> beam.Map(lambda kv: (kv[0], ("root", kv[1]))))
                    | "Merge keepers" >> beam.Flatten()
                    | "Group keepers" >> beam.GroupByKey()
                    | "Follow keepers" >> beam.FlatMap(follow_keepers))
    labels = ((near, exact_labels, ids.duplicate_id) | "Merge labels" >> beam.Flatten()
              | "Label by split" >> beam.MapTuple(lambda node, label: _label_by_split(node, *label)))
    joined = {"split": by_name, "labels": labels}
    lines, side, line_pairs, line_extra = None, {}, [], {}
    if args.line_dedup:  # on the survivors of document dedup: their labels are known here
        lines = LineDedup(args.line_min_docs, args.line_min_words, args.cross_source)
        repeated = ({"split": by_name, "labels": labels}
                    | "Join labels for lines" >> beam.CoGroupByKey()
                    | "Line keys" >> beam.ParDo(LineKeys(lines, priority))
                    | "Group lines" >> beam.GroupByKey()
                    | "Repeated lines" >> beam.FlatMap(repeated_lines(lines.min_docs)).with_output_types(Any)
                    .with_outputs("repeated", main="drops"))
        top = repeated.repeated | "Top lines" >> beam.CombineGlobally(TopLines(TOP_LINES))
        joined["lines"] = repeated.drops
        side = {"top": beam.pvalue.AsSingleton(top)}
        line_pairs = [tally(repeated.repeated, STAGE, "repeated_lines", label="Count repeated lines"),
                      pipeline | "Zero line counts" >> beam.Create([(k, 0) for k in LINE_COUNTS])]
        line_extra = {"line_dedup": pipeline | "Line settings" >> beam.Create([{
            "min_docs": lines.min_docs, "min_words": lines.min_words,
            "scope": "cross-source" if lines.cross_source else "per source",
            "order": "after document dedup, on its survivors; kept by (source rank, hash of source and id)",
            "key": "8-byte BLAKE2b of the scope and the line's normalized word hashes"}])}
    result = (joined
              | "Join labels" >> beam.CoGroupByKey()
              | "Apply labels and write" >> beam.ParDo(ApplyLabelsAndWrite(args.output, schema, args.part_mb, lines),
                                                       **side)
              .with_output_types(Any).with_outputs("clusters", "top_lines", main="counts"))
    if lines is not None:
        line_extra["top_repeated_lines"] = top | "Top line texts" >> beam.Map(
            top_lines_stats, beam.pvalue.AsDict(result.top_lines))

    # cluster sizes: the survivor plus every document removed in its place
    sizes = (result.clusters
             | "Count cluster" >> beam.CombinePerKey(sum)
             | "Add survivor" >> beam.MapTuple(lambda root, n: (root, n + 1))
             | "Alarm" >> beam.Map(_alarm_cluster(args.cluster_alarm)))
    settings = {"threshold": config.threshold, "ngram": config.ngram, "num_perm": config.num_perm,
                "bands": config.bands, "rows": config.rows, "seed": config.seed, "verify": config.verify,
                "cross_source": args.cross_source, "source_priority": list(priority) or "domain first",
                "cc_rounds": args.cc_rounds, "hash": "64-bit, datasketch affine64-compatible"}
    summary = sizes | "Summarize clusters" >> beam.CombineGlobally(ClusterSummary())
    extra = {
        "minhash": pipeline | "Settings" >> beam.Create([settings]),
        "cluster_size_histogram": summary | "Histogram" >> beam.Map(lambda s: s["histogram"]),
        "clusters": summary | "Cluster count" >> beam.Map(lambda s: s["clusters"]),
        "largest_clusters": summary | "Largest" >> beam.Map(lambda s: s["largest"]),
        "largest_bucket": buckets.bucket_size | "Max bucket" >> beam.CombineGlobally(lambda xs: max(xs, default=0)),
        **line_extra,
    }
    zeros = pipeline | "Zero counts" >> beam.Create([(k, 0) for k in COUNTS])
    pairs = (
        fp.counts,
        result.counts,
        tally(candidates, STAGE, "candidate_edges", label="Count candidates"),
        tally(edges, STAGE, "verified_edges", label="Count verified"),
        tally(cc["unconverged"], STAGE, "cc_unconverged_nodes", label="Count unconverged"),
        tally(cc["residual"], STAGE, "cc_residual_edges", label="Count residual"),
        zeros,
        *line_pairs,
    )
    pairs | "Merge counts" >> beam.Flatten() | "Stats" >> WriteStats(STAGE, args.output, extra=extra)


def build_parser():
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--input", action="append", required=True,
                        help="stage directory or Parquet glob (repeatable), e.g. the filter stage's outputs")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="Jaccard similarity of word n-gram sets above which documents are near "
                             "duplicates (default 0.8)")
    parser.add_argument("--ngram", type=int, default=DEFAULT_NGRAM, help="words per shingle (default 5)")
    parser.add_argument("--num-perm", type=int, default=DEFAULT_NUM_PERM,
                        help="MinHash permutations (default 128); bands x rows are derived from "
                             "--threshold and this")
    parser.add_argument("--bands", type=int, default=0, help="override the derived LSH bands (with --rows)")
    parser.add_argument("--rows", type=int, default=0, help="override the derived LSH rows per band")
    parser.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                        help="check candidate pairs by exact Jaccard on shingles (and derive bands x rows "
                             "favouring recall); costs one shuffle of every document's shingles")
    parser.add_argument("--cross-source", action="store_true",
                        help="deduplicate across sources too (default: within each source)")
    parser.add_argument("--source-priority", default="",
                        help="comma-separated sources, most preferred first (default: domain sources, "
                             "then general ones, each by name)")
    parser.add_argument("--cc-rounds", type=int, default=DEFAULT_CC_ROUNDS,
                        help=f"large-star/small-star rounds for connected components (default {DEFAULT_CC_ROUNDS})")
    parser.add_argument("--cluster-alarm", type=int, default=DEFAULT_CLUSTER_ALARM,
                        help="log an ALARM line for clusters/buckets of at least this many documents")
    parser.add_argument("--line-dedup", action="store_true",
                        help="also remove repeated lines (C4): a line found in --line-min-docs surviving documents "
                             "of a scope is kept in one only; documents left without a long line are removed "
                             "as empty_after_line_dedup")
    parser.add_argument("--line-min-docs", type=int, default=MIN_LINE_DOCS,
                        help=f"documents a line must occur in to be deduplicated (default {MIN_LINE_DOCS}, C4)")
    parser.add_argument("--line-min-words", type=int, default=MIN_LINE_WORDS,
                        help=f"shorter lines (normalized words) are never removed (default {MIN_LINE_WORDS}, "
                             "C4's minimum words per line)")
    return parser


def config_from_args(args) -> MinHashConfig:
    if not 0.0 < args.threshold < 1.0:
        raise InputError(f"--threshold must be in (0, 1), got {args.threshold}")
    if args.ngram < 1 or args.num_perm < 1:
        raise InputError("--ngram and --num-perm must be >= 1")
    if args.line_min_docs < 2 or args.line_min_words < 1:
        raise InputError(f"--line-min-docs must be >= 2 and --line-min-words >= 1, got {args.line_min_docs} "
                         f"and {args.line_min_words}")
    return MinHashConfig(threshold=args.threshold, ngram=args.ngram, num_perm=args.num_perm,
                         bands=args.bands, rows=args.rows, verify=args.verify).resolved()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args, options = parse(build_parser(), argv)
    try:
        config = config_from_args(args)
        files = stage_inputs(args.input, options)
        schema = stage_schema(files, options)
        if writes_output(options):
            total = describe_inputs(STAGE, files)
            args.split_mb = auto_split_mb(args.split_mb, total)
            prepare_output_dir(args.output, [DUPLICATES, "rejected"])
    except (InputError, ValueError) as exc:
        fail(str(exc))
    log.info("dedup: %d files, threshold %.2f, %d-grams, %d perms = %d bands x %d rows%s%s", len(files),
             config.threshold, config.ngram, config.num_perm, config.bands, config.rows,
             ", verify" if config.verify else "", ", cross-source" if args.cross_source else "")
    if args.line_dedup:
        log.info("dedup: line dedup: lines of >= %d words in >= %d documents kept once", args.line_min_words,
                 args.line_min_docs)
    stats = run_stage(STAGE, lambda p: build(p, args, files, schema, config), options, args.output)
    for cluster in stats.get("largest_clusters") or []:
        if cluster["size"] >= args.cluster_alarm:
            print(f"ALARM: cluster of {cluster['size']} documents kept as {cluster['source']}/{cluster['kept']}"
                  " (a transitive-closure chain? inspect duplicates/ for this cluster)")
    residual = stats.get("counts", {}).get("cc_residual_edges", 0)
    if residual >= RESIDUAL_ALARM:
        print(f"ALARM: {residual:,} edges left after {args.cc_rounds} star rounds went through the one-worker "
              "union-find; raise --cc-rounds so that it stays small")
    return stats


if __name__ == "__main__":
    main()
