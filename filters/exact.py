"""Exact deduplication keys and C4-style line deduplication, as pure functions (no Beam).

Document level: two documents are exact duplicates when their normalized texts (case,
whitespace and punctuation folded: :func:`filters.minhash.normalize_text`) are equal; the
key is a 16-byte hash of that text (:func:`filters.minhash.exact_hash`, re-exported here so
that both dedup keys are found in one place). Scopes and survivor choice live in
``pipelines/dedup.py``.

Line level (``pipelines.dedup --line-dedup``; C4's ``remove_duplicate_text``, Raffel et al.
2020, section 2.2, TFDS ``c4_utils``): a line that occurs in several documents (disclaimers,
bylines, "Forward-looking statements" paragraphs, "Share this article") is kept in one of
them and removed from the others. A line is a piece of ``text.split("\\n")``, as in C4; its
key is 8 bytes of BLAKE2b over the scope and the 64-bit hashes of its normalized words, so
two lines match when their normalized texts are equal. The Beam side counts documents per
key and asks :func:`remove_repeated_lines` per document, so the functions here see one
document at a time. Table lines (``filters/tables.py``) are never line-deduplicated: a table's header
and rows belong to every filing that has them (:func:`prose_line_keys`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from filters.minhash import _codepoints, _word_bounds, _word_hashes, exact_hash, normalize_text
from filters.tables import table_line_mask

__all__ = ["exact_hash", "normalize_text", "line_keys", "prose_line_keys", "line_hash", "document_lines",
           "remove_repeated_lines",
           "has_dedup_line", "MIN_LINE_WORDS", "MIN_LINE_DOCS", "LINE_KEY_BYTES"]

# Lines with fewer normalized words are never deduplicated: C4 drops lines of fewer than 5 words
# before its line dedup (TFDS c4_utils ``_MIN_WORDS_PER_LINE = 5``); we keep them but leave them
# alone, so table headers ("Three Months Ended"), list items and "Yes" stay in every document.
MIN_LINE_WORDS = 5
# A line is repeated when it occurs in at least this many documents of a scope. C4 removes every
# line seen in more than one page (``_emit_line_to_urls``: all but one URL per line), and so does
# Dolma's paragraph dedup: 2.
MIN_LINE_DOCS = 2
LINE_KEY_BYTES = 8  # 2^-64 per pair: ~0.03 expected false matches among 10^9 distinct lines
_NEWLINE = 10


def line_keys(text: str, min_words: int = MIN_LINE_WORDS, scope: str = "") -> list[bytes | None]:
    """One entry per line of ``text.split("\\n")``: its key, or None for a line of fewer than
    ``min_words`` normalized words.

    One vectorized pass over the document (the word hashes MinHash uses), then one BLAKE2b per
    line: ~10x cheaper than normalizing each line as a string.
    """
    cps = _codepoints(text)
    is_word, starts, ends = _word_bounds(cps)
    raw = _word_hashes(cps, is_word, starts, ends).astype("<u8").tobytes()
    newlines = np.flatnonzero(cps == _NEWLINE)
    line_of_word = np.searchsorted(newlines, starts)  # newlines before each word = its line
    bounds = np.searchsorted(line_of_word, np.arange(len(newlines) + 2)).tolist()  # word range per line
    prefix = scope.encode("utf-8", "surrogatepass") + b"\x00"
    keys: list[bytes | None] = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi - lo < min_words:
            keys.append(None)
        else:
            keys.append(hashlib.blake2b(prefix + raw[8 * lo:8 * hi], digest_size=LINE_KEY_BYTES).digest())
    return keys


def line_hash(line: str, scope: str = "") -> bytes:
    """The key of one line (whatever its length), as :func:`line_keys` computes it."""
    key = line_keys(line.replace("\n", " "), 0, scope)[0]
    assert key is not None
    return key


def prose_line_keys(text: str, min_words: int = MIN_LINE_WORDS, scope: str = "") -> list[bytes | None]:
    """:func:`line_keys` with table lines left out (None): a table row, numeric line or table heading
    (``filters/tables.py``: ``iPhone (1) | $51,982 | $61,104``, ``Three Months Ended``) is part of its
    table in every filing that has it, not boilerplate to keep in one document only."""
    keys = line_keys(text, min_words, scope)
    if any(k is not None for k in keys):
        keys = [None if table else k for k, table in zip(keys, table_line_mask(text))]
    return keys


def document_lines(text: str, min_words: int = MIN_LINE_WORDS, scope: str = "") -> list[bytes]:
    """Distinct keys of the lines of a document that line dedup may remove (long enough, not table
    lines), in order."""
    return list(dict.fromkeys(k for k in prose_line_keys(text, min_words, scope) if k is not None))


def remove_repeated_lines(text: str, keep_line: Callable[[bytes], bool], min_words: int = MIN_LINE_WORDS,
                          scope: str = "") -> tuple[str, int]:
    """Drop every line whose key ``keep_line`` rejects (it is kept in another document).

    Returns ``(new text, number of lines removed)``. Short lines and table lines are always kept. Unlike C4, a
    line repeated inside this one document is left alone when ``keep_line`` accepts it: in-document
    repetition is the Gopher repetition rules' job (filter stage), and line dedup only removes
    what another document keeps.
    """
    lines = text.split("\n")
    out, removed = [], 0
    for line, key in zip(lines, prose_line_keys(text, min_words, scope)):
        if key is not None and not keep_line(key):
            removed += 1
        else:
            out.append(line)
    return "\n".join(out), removed


def has_dedup_line(text: str, min_words: int = MIN_LINE_WORDS) -> bool:
    """Whether any line has at least ``min_words`` words: a document that lost lines to line dedup
    and has none left (only headings, blank lines) is removed as ``empty_after_line_dedup``."""
    return any(k is not None for k in line_keys(text, min_words))
