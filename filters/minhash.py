"""MinHash signatures and LSH banding for near-duplicate detection, in numpy (no Beam).

The pipeline of one document (all vectorized over the characters/words of the document)::

    text -> lowercase -> words (runs of letters, digits and combining marks; everything else,
    i.e. punctuation, symbols and whitespace, is a separator) -> 64-bit word hashes ->
    64-bit word n-gram (shingle) hashes -> MinHash signature (num_perm uint64) -> LSH band keys

Signatures are **bit-compatible with datasketch** (>= 2.0, ``scheme="affine64"``): for the
same shingle hashes, :func:`signature` returns exactly the ``hashvalues`` of
``datasketch.MinHash(num_perm, seed, scheme="affine64", hashfunc=int)`` after
``update_batch(shingle_hashes)`` (pinned by tests/test_minhash.py). We use datasketch's own
permutation parameters and do the arithmetic ourselves because hashing words with numpy is
~10x faster than hashing each shingle string in Python (benchmarks/bench_dedup.py measures
both paths; :func:`signature_datasketch` is the reference path).

Word hashing: a word's hash is the MurmurHash3 64-bit finalizer of ``sum_k cp_k * C_k mod 2^64``
(``cp_k`` its k-th code point, ``C_k`` fixed random odd constants): a multilinear hash,
computed for all words of a document in a few numpy passes. A shingle's hash is
``sum_j word_{i+j} * D_j mod 2^64`` (order-sensitive). Collisions between distinct 5-grams are
~2^-64 events; they can only make two documents look slightly more similar.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

DEFAULT_NGRAM = 5  # word 5-grams: Gopher/MassiveText dedup (Rae et al. 2021), datatrove's MinhashConfig
DEFAULT_NUM_PERM = 128  # datasketch's default; BigCode used 256, datatrove 14 x 8 = 112
DEFAULT_THRESHOLD = 0.8  # Jaccard; Gopher/FineWeb-style near-duplicate level
DEFAULT_SEED = 1  # datasketch's default seed: the same permutations as MinHash(num_perm)
# Weights of the false-positive and false-negative areas under the LSH S-curve (datasketch's
# MinHashLSH defaults are 0.5/0.5). With exact verification false positives are filtered
# afterwards, so candidate generation can favour recall.
DEFAULT_WEIGHTS = (0.5, 0.5)
VERIFY_WEIGHTS = (0.1, 0.9)
BAND_KEY_BYTES = 8  # 64-bit band hashes
MAX_HASH = np.uint64((1 << 64) - 1)
_CHUNK_ROWS = 2048  # shingles per block when applying permutations (bounds memory: 2048 x P x 8 B)
_MAX_WORD_POS = 64  # word-hash constants cycle after 64 characters

# MurmurHash3 fmix64 constants (Appleby), the same as datasketch's affine64 pre-mix.
_FMIX = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(33), np.uint64(0xC4CEB9FE1A85EC53),
         np.uint64(33))
_rng = np.random.Generator(np.random.PCG64(20261127))  # fixed: hashes must be stable forever
_CHAR_MULT = _rng.integers(0, 1 << 63, _MAX_WORD_POS, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_WORD_MULT = _rng.integers(0, 1 << 63, 32, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_LEN_MULT = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio constant, mixes the word length in


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer, element-wise (a bijection; uint64 arithmetic wraps)."""
    s1, m1, s2, m2, s3 = _FMIX
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s3)


@lru_cache(maxsize=1)
def word_char_table() -> np.ndarray:
    """Boolean table over all code points: True for word characters.

    A word character is a letter or digit (``str.isalnum``, what regex ``[^\\W_]`` matches)
    or a combining mark (category M*, so that Devanagari or Thai vowel signs do not split
    words). Built once per process (~0.2 s): the regex engine finds the alphanumerics, and
    only the rest are asked for their category.
    """
    table = np.zeros(0x110000, dtype=bool)
    every = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))
    cps = np.fromiter((m.start() for m in re.finditer(r"[^\W_]", every)), dtype=np.int64)
    cps[cps >= 0xD800] += 0x800  # undo the gap left by the surrogates
    table[cps] = True
    # combining marks live in the BMP, the SMP and the variation-selector supplement
    span = np.r_[0x300:0x20000, 0xE0000:0xE1000]
    for cp in span[~table[span]].tolist():
        if unicodedata.category(chr(cp))[0] == "M":
            table[cp] = True
    return table


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.lower().encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _word_bounds(cps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is_word mask, start index of each word, end index of each word) over code points."""
    is_word = word_char_table()[cps]
    padded = np.zeros(len(cps) + 2, dtype=bool)
    padded[1:-1] = is_word
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    return is_word, changes[0::2], changes[1::2]


def words(text: str) -> list[str]:
    """The normalized words of a text: lowercase runs of word characters (reference, for tests/docs)."""
    cps = _codepoints(text)
    _, starts, ends = _word_bounds(cps)
    return [cps[s:e].tobytes().decode("utf-32-le") for s, e in zip(starts, ends)]


def normalize_text(text: str) -> str:
    """Case, whitespace and punctuation folded: the words joined by single spaces."""
    return " ".join(words(text))


def exact_hash(text: str) -> bytes:
    """16-byte key of the normalized text: SHA-1 of its sequence of 64-bit word hashes.

    Two texts get the same key exactly when :func:`normalize_text` is equal (up to a 64-bit
    word-hash collision); hashing the word hashes, already computed for MinHash, costs ~2 us.
    """
    return _exact_hash(word_hashes(text))


def _exact_hash(wh: np.ndarray) -> bytes:
    return hashlib.sha1(wh.tobytes()).digest()[:16]


def word_hashes(text: str) -> np.ndarray:
    """64-bit hash of every normalized word, in order (uint64 array)."""
    cps = _codepoints(text)
    return _word_hashes(cps, *_word_bounds(cps))


def _word_hashes(cps: np.ndarray, is_word: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    if len(starts) == 0:
        return np.zeros(0, dtype=np.uint64)
    lengths = ends - starts
    chars = cps[is_word]
    # position of each word character inside its word: 0, 1, 2... restarting at every word
    offsets = np.zeros(len(starts), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    pos = np.arange(len(chars)) - np.repeat(offsets, lengths)
    if lengths.max() > _MAX_WORD_POS:
        pos %= _MAX_WORD_POS
    terms = chars.astype(np.uint64) * _CHAR_MULT[pos]
    sums = np.add.reduceat(terms, offsets)
    return fmix64(sums + lengths.astype(np.uint64) * _LEN_MULT)


def analyze(text: str, ngram: int = DEFAULT_NGRAM) -> tuple[bytes, np.ndarray]:
    """``(exact hash, sorted unique shingle hashes)`` of one text."""
    wh = word_hashes(text)
    return _exact_hash(wh), shingle_hashes(wh, ngram)


def shingle_hashes(wh: np.ndarray, ngram: int = DEFAULT_NGRAM) -> np.ndarray:
    """Sorted unique 64-bit hashes of the word n-grams (a text shorter than n is one shingle)."""
    n = len(wh)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    if ngram > len(_WORD_MULT):
        raise ValueError(f"ngram must be <= {len(_WORD_MULT)}, got {ngram}")
    k = min(ngram, n)
    count = n - k + 1
    acc = wh[:count] * _WORD_MULT[0]
    for j in range(1, k):
        acc += wh[j:j + count] * _WORD_MULT[j]
    return np.unique(acc)


def text_shingles(text: str, ngram: int = DEFAULT_NGRAM) -> np.ndarray:
    return shingle_hashes(word_hashes(text), ngram)


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int = DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine64 permutation parameters ``(a, b)`` for (num_perm, seed).

    Drawn exactly as ``datasketch.MinHash(num_perm, seed, scheme="affine64")._init_permutations``
    does (pinned by a test), without importing datasketch (~1-2 s of imports per worker).
    """
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = gen.randint(0, 1 << 64, num_perm, dtype=np.uint64)
    return a, b


def signature(shingles: np.ndarray, num_perm: int = DEFAULT_NUM_PERM, seed: int = DEFAULT_SEED) -> np.ndarray:
    """MinHash signature (uint64[num_perm]) of a set of 64-bit shingle hashes.

    ``min_i (a_k * fmix64(h_i) + b_k) mod 2^64`` per permutation k: datasketch's affine64
    scheme. An empty set gives all-ones (datasketch's empty value).
    """
    sig = np.full(num_perm, MAX_HASH, dtype=np.uint64)
    if len(shingles) == 0:
        return sig
    mixed = fmix64(np.asarray(shingles, dtype=np.uint64))
    return _segment_min_signatures(mixed, np.zeros(1, dtype=np.int64), num_perm, seed)[0]


def _identity(value) -> int:
    return int(value)


def signature_datasketch(shingles: np.ndarray, num_perm: int = DEFAULT_NUM_PERM,
                         seed: int = DEFAULT_SEED) -> np.ndarray:
    """The reference path: datasketch ``MinHash.update_batch`` on the same shingle hashes."""
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm, seed=seed, scheme="affine64", hashfunc=_identity)
    if len(shingles):
        m.update_batch(shingles.tolist())
    return m.hashvalues


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted-unique hash arrays (two empty sets: 1.0)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of equal signature positions: the MinHash estimate of Jaccard similarity."""
    return float(np.mean(sig_a == sig_b))


# ---------------------------------------------------------------------------- LSH banding

def candidate_probability(similarity: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """P(two documents with this Jaccard share at least one band) = 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=float) ** rows) ** bands


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int,
               weights: tuple[float, float] = DEFAULT_WEIGHTS) -> tuple[int, int]:
    """``(bands, rows)`` with ``bands * rows <= num_perm`` minimizing
    ``w_fp * FP area + w_fn * FN area``: the integral of the candidate probability below the
    threshold plus that of its complement above (datasketch's ``_optimal_param``, here with
    a 1/1000-step trapezoid rule instead of scipy quad)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    s = np.linspace(0.0, 1.0, 1001)
    below, above = s <= threshold, s >= threshold
    w_fp, w_fn = weights
    best, best_err = (1, 1), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = candidate_probability(s, b, r)
            fp = np.trapezoid(np.where(below, p, 0.0), s)
            fn = np.trapezoid(np.where(above, 1.0 - p, 0.0), s)
            err = w_fp * fp + w_fn * fn
            if err < best_err:
                best, best_err = (b, r), err
    return best


def band_keys(sig: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """One 8-byte key per band: BLAKE2b of the band's ``rows`` signature values.

    An empty signature (all ones: a document without words) has no band keys.
    """
    if sig[0] == MAX_HASH and np.all(sig == MAX_HASH):
        return []
    raw = sig[:bands * rows].tobytes()
    step = rows * 8
    return [hashlib.blake2b(raw[i * step:(i + 1) * step], digest_size=BAND_KEY_BYTES).digest()
            for i in range(bands)]


@lru_cache(maxsize=8)
def _column_permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = permutations(num_perm, seed)
    return a[:, None].copy(), b[:, None].copy()


def _segment_min_signatures(mixed: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """Signatures (one row each) of consecutive non-empty segments of pre-mixed shingle hashes.

    Works on (num_perm, shingles) blocks of at most ~_CHUNK_ROWS columns: the permutation
    then runs along contiguous memory (measured 2-3 ns per value, 3-4x faster than the
    (shingles, num_perm) layout) and the block stays in cache.
    """
    a, b = _column_permutations(num_perm, seed)
    out = np.full((len(offsets), num_perm), MAX_HASH, dtype=np.uint64)
    bounds = np.append(offsets, len(mixed))
    lo = 0  # first segment of the current block
    while lo < len(offsets):
        hi = max(int(np.searchsorted(bounds, bounds[lo] + _CHUNK_ROWS, side="right")) - 1, lo + 1)
        if hi == lo + 1 and bounds[hi] - bounds[lo] > _CHUNK_ROWS:  # one long document: stream it
            for start in range(bounds[lo], bounds[hi], _CHUNK_ROWS):
                block = a * mixed[None, start:min(start + _CHUNK_ROWS, bounds[hi])]
                block += b
                np.minimum(out[lo], block.min(axis=1), out=out[lo])
        else:
            block = a * mixed[None, bounds[lo]:bounds[hi]]
            block += b
            out[lo:hi] = np.minimum.reduceat(block, bounds[lo:hi] - bounds[lo], axis=1).T
        lo = hi
    return out


def fingerprint_batch(texts: list[str], ngram: int, num_perm: int, seed: int, bands: int,
                      rows: int) -> list[tuple[bytes, np.ndarray, list[bytes]]]:
    """:meth:`MinHashConfig.fingerprint` of many texts at once (identical results).

    The texts are joined with a separator so that every numpy pass (code points, word
    bounds, word hashes, shingles, permutations) runs once per batch instead of once per
    document: per-call overhead, not arithmetic, dominates for 1-5 KB documents.
    """
    lowered = [t.lower() for t in texts]
    cps = np.frombuffer("\n".join(lowered).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    doc_start = np.zeros(len(texts), dtype=np.int64)
    np.cumsum([len(t) + 1 for t in lowered[:-1]], out=doc_start[1:])
    wh = _word_hashes(cps, *_word_bounds(cps))
    starts = _word_bounds(cps)[1] if len(wh) else np.zeros(0, dtype=np.int64)
    doc_of_word = np.searchsorted(doc_start, starts, side="right") - 1
    counts = np.bincount(doc_of_word, minlength=len(texts))
    word_off = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=word_off[1:])
    # every window of `ngram` consecutive words; those crossing a document boundary are dropped
    k = ngram
    count = max(len(wh) - k + 1, 0)
    acc = wh[:count] * _WORD_MULT[0]
    for j in range(1, k):
        acc += wh[j:j + count] * _WORD_MULT[j]
    valid = doc_of_word[:count] == doc_of_word[k - 1:k - 1 + count] if count else np.zeros(0, dtype=bool)
    shingle_doc = doc_of_word[:count][valid]
    acc = acc[valid]
    sh_counts = np.bincount(shingle_doc, minlength=len(texts))
    sh_off = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(sh_counts, out=sh_off[1:])
    per_doc: list[np.ndarray] = []
    for d in range(len(texts)):
        n = counts[d]
        if n == 0:
            per_doc.append(np.zeros(0, dtype=np.uint64))
        elif n < k:  # shorter than one shingle: the whole text is one
            per_doc.append(shingle_hashes(wh[word_off[d]:word_off[d + 1]], k))
        else:
            per_doc.append(np.unique(acc[sh_off[d]:sh_off[d + 1]]))
    nonempty = [d for d in range(len(texts)) if len(per_doc[d])]
    sigs = {}
    if nonempty:
        flat = np.concatenate([per_doc[d] for d in nonempty])
        lens = np.array([len(per_doc[d]) for d in nonempty])
        offsets = np.zeros(len(nonempty), dtype=np.int64)
        np.cumsum(lens[:-1], out=offsets[1:])
        for d, sig in zip(nonempty, _segment_min_signatures(fmix64(flat), offsets, num_perm, seed)):
            sigs[d] = sig
    out = []
    for d in range(len(texts)):
        keys = band_keys(sigs[d], bands, rows) if d in sigs else []
        out.append((_exact_hash(wh[word_off[d]:word_off[d + 1]]), per_doc[d], keys))
    return out


@dataclass(frozen=True)
class MinHashConfig:
    """Everything that defines the near-duplicate relation of a run."""

    threshold: float = DEFAULT_THRESHOLD
    ngram: int = DEFAULT_NGRAM
    num_perm: int = DEFAULT_NUM_PERM
    seed: int = DEFAULT_SEED
    bands: int = 0  # 0: derived from threshold and num_perm
    rows: int = 0
    verify: bool = False

    def resolved(self) -> MinHashConfig:
        """This config with bands x rows filled in from the threshold (FN-heavy with --verify)."""
        if self.bands and self.rows:
            if self.bands * self.rows > self.num_perm:
                raise ValueError(f"bands x rows = {self.bands * self.rows} > num_perm = {self.num_perm}")
            return self
        b, r = lsh_params(self.threshold, self.num_perm, VERIFY_WEIGHTS if self.verify else DEFAULT_WEIGHTS)
        return MinHashConfig(self.threshold, self.ngram, self.num_perm, self.seed, b, r, self.verify)

    def fingerprint(self, text: str) -> tuple[bytes, np.ndarray, list[bytes]]:
        """(exact hash, sorted unique shingle hashes, LSH band keys) of one text."""
        exact, shingles = analyze(text, self.ngram)
        sig = signature(shingles, self.num_perm, self.seed)
        return exact, shingles, band_keys(sig, self.bands, self.rows)

    def fingerprint_batch(self, texts: list[str]) -> list[tuple[bytes, np.ndarray, list[bytes]]]:
        """:meth:`fingerprint` of many texts, vectorized across them."""
        return fingerprint_batch(texts, self.ngram, self.num_perm, self.seed, self.bands, self.rows)
