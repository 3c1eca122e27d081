"""Exact deduplication keys and C4-style line deduplication, as pure functions (no Beam).

Document level: two documents are exact duplicates when their normalized texts (case,
whitespace and punctuation folded: :func:`filters.minhash.normalize_text`) are equal; the
key is a 16-byte hash of that text. Scopes and survivor choice live in ``pipelines/dedup.py``.

Line level (optional, C4's ``remove_duplicate_text``, Raffel et al. 2020, section 2.2):
lines that occur in several documents (navigation, cookie banners, "Share this article")
are kept in only one of them. The Beam side counts ``line_hash -> min(doc key)`` and then
asks :func:`remove_repeated_lines` per document, so the functions here see one document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

from filters.minhash import exact_hash, normalize_text

__all__ = ["exact_hash", "normalize_text", "line_hash", "document_lines", "remove_repeated_lines",
           "MIN_LINE_WORDS"]

# C4 deduplicates three-sentence spans; lines shorter than this many words (list items,
# headings, "Yes") are too common to mean boilerplate, so they are never removed.
MIN_LINE_WORDS = 3


def line_hash(line: str) -> bytes:
    """8-byte hash of a normalized line (the same folding as documents)."""
    return hashlib.blake2b(normalize_text(line).encode("utf-8"), digest_size=8).digest()


def document_lines(text: str, min_words: int = MIN_LINE_WORDS) -> Iterator[bytes]:
    """Distinct hashes of the lines of a document that are long enough to be deduplicated."""
    seen: set[bytes] = set()
    for line in text.split("\n"):
        if len(normalize_text(line).split()) >= min_words:
            h = line_hash(line)
            if h not in seen:
                seen.add(h)
                yield h


def remove_repeated_lines(text: str, keep_line: Callable[[bytes], bool],
                          min_words: int = MIN_LINE_WORDS) -> tuple[str, int]:
    """Drop lines whose hash ``keep_line`` rejects (they survive in another document).

    Returns ``(new text, number of lines removed)``; short lines are always kept, and a line
    repeated inside this document is kept only once, C4-style.
    """
    out, removed, seen = [], 0, set()
    for line in text.split("\n"):
        if len(normalize_text(line).split()) < min_words:
            out.append(line)
            continue
        h = line_hash(line)
        if h in seen or not keep_line(h):
            removed += 1
            continue
        seen.add(h)
        out.append(line)
    return "\n".join(out), removed
