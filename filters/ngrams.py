"""Word n-gram repetition measures, vectorized over hashed words.

Gopher's repetition rules (Rae et al. 2021, appendix A) ask how much of a document's text is
taken by its most frequent 2-, 3- and 4-gram, and by repeated 5- to 10-grams. Counting n-gram
*strings* in Python (datatrove 0.10.1 builds each one with ``" ".join``) is most of the cost
of quality filtering; here every word is hashed once and n-grams are combined hashes, counted
with ``np.unique``. 64-bit hashes make a collision between two different n-grams of one
document vanishingly unlikely (about n^2 / 2^64).

The definitions follow datatrove's ``gopher_repetition_filter.py`` exactly, including its
greedy scan for duplicated n-grams (after a repeat, skip the n words it covers).
"""

from __future__ import annotations

import bisect

import numpy as np

_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio odd multiplier (Knuth)


def ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """uint64 hash of each n-gram ``words[i:i+n]`` (length ``len - n + 1``, empty if too short)."""
    h = word_hashes.astype(np.uint64, copy=False)
    m = len(h) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    out = h[:m].copy()
    with np.errstate(over="ignore"):
        for k in range(1, n):
            out *= _MIX
            out ^= h[k : k + m]
    return out


def extend_ngram_hashes(prev: np.ndarray, word_hashes: np.ndarray, n: int) -> np.ndarray:
    """n-gram hashes from the (n-1)-gram hashes: the same values ``ngram_hashes(words, n)`` gives."""
    with np.errstate(over="ignore"):
        return prev[:-1] * _MIX ^ word_hashes[n - 1 :].astype(np.uint64, copy=False)


def ngram_char_lengths(word_lengths: np.ndarray, n: int) -> np.ndarray:
    """Characters of each n-gram's words, without separators."""
    cum = np.concatenate(([0], np.cumsum(word_lengths)))
    return cum[n:] - cum[:-n] if len(word_lengths) >= n else np.empty(0, dtype=np.int64)


def top_ngram_chars(hashes: np.ndarray, char_lengths: np.ndarray, n: int) -> int:
    """Characters covered by the most frequent n-gram: ``count * len(" ".join(ngram))``.

    Ties go to the n-gram seen first (``collections.Counter.most_common``). One sort, no argsort.
    """
    if len(hashes) == 0:
        return 0
    s = np.sort(hashes)
    starts = np.concatenate(([0], np.flatnonzero(s[1:] != s[:-1]) + 1))
    counts = np.diff(np.append(starts, len(s)))
    best = int(counts.max())
    if best == 1:
        where = 0
    else:
        values = s[starts[counts == best]]
        where = int(np.flatnonzero(np.isin(hashes, values))[0])
    return best * (int(char_lengths[where]) + n - 1)


def repeated_positions(hashes: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
    """Sorted positions whose n-gram occurs at least twice (first occurrences included).

    ``candidates``: positions known to contain every repeat (those of the (n-1)-grams: an n-gram
    repeats only where its first n-1 words do), so longer n-grams sort only those.
    """
    pos = np.arange(len(hashes)) if candidates is None else candidates[candidates < len(hashes)]
    if len(pos) < 2:
        return pos[:0]
    sub = hashes[pos]
    order = np.argsort(sub, kind="stable")
    s = sub[order]
    eq = s[1:] == s[:-1]
    dup = np.zeros(len(s), dtype=bool)
    dup[1:] |= eq
    dup[:-1] |= eq
    return np.sort(pos[order[dup]])


def duplicated_ngram_chars(
    hashes: np.ndarray, char_lengths: np.ndarray, n: int, positions: np.ndarray | None = None
) -> int:
    """Characters in repeated n-grams, scanning left to right: an n-gram seen before adds its
    characters and the scan jumps past it (its n words); n-grams jumped over are not recorded.

    ``positions``: every position of a repeated n-gram (``repeated_positions``); the scan only
    needs those, in Python, and they are few in documents that pass.
    """
    if positions is None:
        positions = repeated_positions(hashes)
    if len(positions) == 0:
        return 0
    _, first_index, inverse = np.unique(hashes[positions], return_index=True, return_inverse=True)
    first = positions[first_index[inverse]]
    is_candidate = first < positions
    cand_pos = positions[is_candidate].tolist()
    cand_first = first[is_candidate].tolist()
    cand_id = inverse[is_candidate].tolist()
    repeated = 0
    next_pos = 0  # the scan's next position
    skip_starts: list[int] = []  # sorted starts of jumped-over ranges [s, s + n - 1)
    seen_later: set[int] = set()  # n-grams (by id) recorded at a non-first position
    for pos, f, ident in zip(cand_pos, cand_first, cand_id):
        if pos < next_pos:
            continue  # jumped over: neither checked nor recorded
        k = bisect.bisect_right(skip_starts, f) - 1
        first_recorded = not (k >= 0 and f < skip_starts[k] + n - 1)
        if first_recorded or ident in seen_later:
            repeated += int(char_lengths[pos])
            skip_starts.append(pos + 1)
            next_pos = pos + n
        else:
            seen_later.add(ident)
            next_pos = pos + 1
    return repeated


def duplicate_elements(items: list[str]) -> tuple[int, int]:
    """(number, characters) of items equal to an earlier item (datatrove ``find_duplicates``)."""
    unique = set(items)
    n_dup = len(items) - len(unique)
    if n_dup == 0:
        return 0, 0
    return n_dup, sum(map(len, items)) - sum(map(len, unique))
