"""Tokenized shard format shared by the tokenize stage, the mixer and the trainer.

A *shard* is two NumPy files side by side:

- ``NAME.tokens.npy``: 1-D token ids, ``uint16`` when the vocabulary has <= 65,536
  entries, else ``uint32``. Every document ends with the end-of-document token.
- ``NAME.docs.npy``: 1-D ``int64`` document boundaries, length ``n_docs + 1``; document
  ``i`` is ``tokens[docs[i]:docs[i + 1]]`` (its EOS included).

``.npy`` keeps dtype and length in a header, so ``np.load(..., mmap_mode="r")`` maps a
shard without reading it. A *shard directory* holds any number of shards; readers take
them in sorted name order, so the token stream of a directory is fully determined by
its file names and contents.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOKENS_SUFFIX = ".tokens.npy"
DOCS_SUFFIX = ".docs.npy"


def token_dtype(vocab_size: int) -> np.dtype:
    """Smallest unsigned dtype that holds every id of a vocabulary of ``vocab_size``."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def manifest_dtype(manifest: dict) -> np.dtype:
    """Token dtype of a mix manifest's shards: its ``dtype`` (``token_dtype`` of its vocabulary);
    manifests written before the field existed were all ``uint16``."""
    return np.dtype(manifest.get("dtype") or "uint16")


def write_shard(path_prefix: str | os.PathLike, docs: list[np.ndarray] | np.ndarray,
                vocab_size: int, doc_lengths: np.ndarray | None = None) -> int:
    """Write one shard at ``path_prefix`` (+ the two suffixes); returns its token count.

    ``docs`` is either a list of per-document id arrays (each already ending in EOS), or a
    flat array of ids together with ``doc_lengths``. Files are written to a temporary
    name and renamed, so a reader never sees half a shard.
    """
    dtype = token_dtype(vocab_size)
    if doc_lengths is None:
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        flat = np.concatenate(docs).astype(dtype, copy=False) if len(docs) else np.zeros(0, dtype)
    else:
        lengths = np.asarray(doc_lengths, dtype=np.int64)
        flat = np.asarray(docs).astype(dtype, copy=False)
        if int(lengths.sum()) != flat.size:
            raise ValueError(f"doc_lengths sum to {int(lengths.sum())} but {flat.size} tokens were given")
    if flat.size and int(flat.max()) >= vocab_size:
        raise ValueError(f"token id {int(flat.max())} is outside the vocabulary of {vocab_size}")
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    prefix = Path(path_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for suffix, array in ((TOKENS_SUFFIX, flat), (DOCS_SUFFIX, offsets)):
        final = prefix.with_name(prefix.name + suffix)
        tmp = final.with_name(final.name + ".tmp")
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, final)
    return int(flat.size)


@dataclass(frozen=True)
class Shard:
    """One memory-mapped shard: ``tokens`` and document ``offsets`` (never loaded whole)."""

    name: str
    tokens: np.ndarray
    offsets: np.ndarray

    @classmethod
    def open(cls, path_prefix: str | os.PathLike) -> Shard:
        prefix = str(path_prefix)
        tokens = np.load(prefix + TOKENS_SUFFIX, mmap_mode="r", allow_pickle=False)
        offsets = np.load(prefix + DOCS_SUFFIX, mmap_mode="r", allow_pickle=False)
        if offsets.size == 0 or int(offsets[-1]) != tokens.size:
            raise ValueError(f"shard {prefix}: document index does not cover its {tokens.size} tokens")
        return cls(Path(prefix).name, tokens, offsets)

    @property
    def n_docs(self) -> int:
        return int(self.offsets.size - 1)

    def doc(self, i: int) -> np.ndarray:
        return self.tokens[int(self.offsets[i]):int(self.offsets[i + 1])]


def list_shards(directory: str | os.PathLike) -> list[str]:
    """Path prefixes of every shard in ``directory``, in sorted (stream) order."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"shard directory {d} does not exist")
    return sorted(str(p)[: -len(TOKENS_SUFFIX)] for p in d.glob("*" + TOKENS_SUFFIX))


class TokenStream:
    """All shards of a directory as one virtual, memory-mapped token stream.

    ``window(start, length)`` reads ``length`` consecutive tokens from global position
    ``start`` (crossing shard boundaries when needed) and ``random_batch`` draws
    ``(batch, seq_len + 1)`` windows: both touch only the bytes they return.
    """

    def __init__(self, directory: str | os.PathLike, dtype: np.dtype | str | None = None):
        """``dtype``: the token dtype the caller expects (a mix manifest's, ``manifest_dtype``);
        every shard of the directory must have it (the ``.npy`` header says), or one dtype when None."""
        prefixes = list_shards(directory)
        if not prefixes:
            raise FileNotFoundError(f"no *{TOKENS_SUFFIX} shards in {directory}")
        self.directory = str(directory)
        self.shards = [Shard.open(p) for p in prefixes]
        found = sorted({s.tokens.dtype.name for s in self.shards})
        if len(found) != 1 or (dtype is not None and found != [np.dtype(dtype).name]):
            raise ValueError(f"{directory}: shards hold {'/'.join(found)} token ids"
                             + (f", expected {np.dtype(dtype).name}" if dtype is not None else " (mixed)"))
        sizes = np.array([s.tokens.size for s in self.shards], dtype=np.int64)
        self.starts = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.starts[1:])
        self.n_tokens = int(self.starts[-1])
        self.n_docs = sum(s.n_docs for s in self.shards)
        self.dtype = self.shards[0].tokens.dtype

    def __len__(self) -> int:
        return self.n_tokens

    def window(self, start: int, length: int) -> np.ndarray:
        if start < 0 or start + length > self.n_tokens:
            raise IndexError(f"window [{start}, {start + length}) outside stream of {self.n_tokens} tokens")
        out = np.empty(length, dtype=np.int64)
        filled = 0
        shard = int(np.searchsorted(self.starts, start, side="right") - 1)
        pos = start - int(self.starts[shard])
        while filled < length:
            tokens = self.shards[shard].tokens
            take = min(length - filled, tokens.size - pos)
            out[filled:filled + take] = tokens[pos:pos + take]
            filled += take
            shard, pos = shard + 1, 0
        return out

    def random_batch(self, rng: np.random.Generator, batch: int, seq_len: int) -> np.ndarray:
        """``(batch, seq_len + 1)`` int64 windows at uniform random starts (inputs + shifted targets)."""
        span = seq_len + 1
        if self.n_tokens < span:
            raise ValueError(f"stream of {self.n_tokens} tokens is shorter than one window of {span}")
        starts = rng.integers(0, self.n_tokens - span + 1, size=batch)
        return np.stack([self.window(int(s), span) for s in starts])


# ----------------------------------------------------------------------------- document index
# Added for the tokenize stage and the mixer (additive: shards without an index still work).
# ``NAME.index.parquet`` has one row per document of the shard, in shard order: ``source``,
# ``id`` (the curated document's id) and ``bytes`` (UTF-8 bytes of its text, so bits per byte
# can be computed from a loss in nats per token). Small next to the tokens; read whole.

INDEX_SUFFIX = ".index.parquet"
INDEX_COLUMNS = ("source", "id", "bytes")


def doc_index_table(sources: list[str], ids: list[str], n_bytes: np.ndarray | list[int]):
    """The index of one shard as a ``pyarrow.Table`` (columns :data:`INDEX_COLUMNS`)."""
    import pyarrow as pa

    return pa.table({"source": pa.array(sources, pa.string()), "id": pa.array(ids, pa.string()),
                     "bytes": pa.array(np.asarray(n_bytes, dtype=np.int64), pa.int64())})


def doc_index_bytes(sources: list[str], ids: list[str], n_bytes: np.ndarray | list[int]) -> bytes:
    """Serialized ``NAME.index.parquet`` (zstd, fixed settings: the same rows give the same bytes)."""
    import io

    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(doc_index_table(sources, ids, n_bytes), sink, compression="zstd", row_group_size=1 << 20)
    return sink.getvalue()


def write_doc_index(path_prefix: str | os.PathLike, sources: list[str], ids: list[str],
                    n_bytes: np.ndarray | list[int]) -> None:
    """Write ``path_prefix + INDEX_SUFFIX`` atomically (temporary name, then rename)."""
    final = Path(str(path_prefix) + INDEX_SUFFIX)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".tmp")
    tmp.write_bytes(doc_index_bytes(sources, ids, n_bytes))
    os.replace(tmp, final)


def read_doc_index(path_prefix: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{"source": object array, "id": object array, "bytes": int64 array}`` of one shard."""
    import pyarrow.parquet as pq

    table = pq.read_table(str(path_prefix) + INDEX_SUFFIX)
    return {"source": np.asarray(table.column("source").to_pylist(), dtype=object),
            "id": np.asarray(table.column("id").to_pylist(), dtype=object),
            "bytes": table.column("bytes").to_numpy().astype(np.int64, copy=False)}


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` serialized exactly as :func:`write_shard` writes it (``np.save``), for object stores."""
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
