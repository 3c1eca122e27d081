"""What every quality rule needs from a document, computed once and shared.

A :class:`DocStats` wraps one text; each property is computed on first use and cached, so the
Gopher, C4 and FineWeb rules split the words, hash them and cut the lines once per document,
not once per rule. Word-level numbers are numpy arrays, so the rules are vectorized:

- ``words``: spaCy-compatible tokens (``filters/words.py``);
- ``word_hashes``: one int64 per word (Python's string hash, cached on the string object), the
  input of the n-gram counting in ``filters/ngrams.py``;
- ``word_props``: per word, its length in characters and three flags (has a non-punctuation
  character, has a letter, which stop word it is), looked up in a per-process table.

Built with a :class:`filters.tables.TableConfig` that is enabled (the finance profile), it also
classifies the lines (``layout``: prose, table rows, numeric lines, table headings) and offers
``words_view``: the statistics of the prose and the table labels without the number cells, the
text that word-level rules should read (``filters/tables.py``).
"""

from __future__ import annotations

import re
from functools import cached_property

import numpy as np

from filters.ngrams import (
    duplicate_elements,
    extend_ngram_hashes,
    ngram_char_lengths,
    ngram_hashes,
    repeated_positions,
)
from filters.tables import Layout, TableConfig, is_number
from filters.words import split_words

# datatrove/utils/text.py PUNCTUATION and TERMINAL_PUNCTUATION (the latter abridged to the
# scripts of our corpora): a word made only of these characters is a "symbol", not a word
PUNCTUATION = (
    "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
    + "".join(map(chr, [*range(0, 9), *range(11, 13), *range(13, 32), *range(127, 160)]))
)
TERMINAL_PUNCTUATION = frozenset(".!?。！？．｡؟۔।॥።፧‼‽⁇⁈⁉⸮︒﹒﹖﹗")
PUNCTUATION_SET = frozenset(PUNCTUATION) | TERMINAL_PUNCTUATION

# Gopher (Rae et al. 2021, appendix A): a document needs >= 2 of these
GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")

_PARAGRAPH_SPLIT = re.compile(r"\n{2,}")
_LINE_SPLIT = re.compile(r"\n+")

# word_props layout: bit 0 non-symbol, bit 1 has a letter, bits 2..9 stop-word id, bits 16.. length
NON_SYMBOL, HAS_ALPHA, STOP_SHIFT, LENGTH_SHIFT = 1, 2, 2, 16


class _WordProps(dict):
    """word -> packed properties; bounded, computed once per distinct word and process."""

    def __missing__(self, word: str) -> int:
        props = len(word) << LENGTH_SHIFT
        if not PUNCTUATION_SET.issuperset(word):
            props |= NON_SYMBOL
        if any(c.isalpha() for c in word):
            props |= HAS_ALPHA
        if word in _STOP_IDS:
            props |= 1 << (STOP_SHIFT + _STOP_IDS[word])
        if len(self) >= 1_000_000:
            self.clear()
        self[word] = props
        return props


class _NumberTokens(dict):
    """word -> is it a number token; bounded, once per distinct word and process."""

    def __missing__(self, word: str) -> bool:
        value = word[:1] in _NUMBER_FIRST and is_number(word)
        if len(self) >= 1_000_000:
            self.clear()
        self[word] = value
        return value


_NUMBER_FIRST = frozenset("0123456789$€£¥%(-—–−+[")
_number_token = _NumberTokens().__getitem__
_STOP_IDS = {w: i for i, w in enumerate(GOPHER_STOP_WORDS)}
_PROPS = _WordProps()


class DocStats:
    """Lazily computed, shared statistics of one document's text (see the module docstring)."""

    def __init__(self, text: str, tables: TableConfig | None = None):
        self.text = text
        self.tables = tables if tables is not None and tables.enabled else None

    @cached_property
    def layout(self) -> Layout | None:
        """Line kinds (prose / table / numeric / heading); None unless table-aware."""
        return None if self.tables is None else Layout(self.text, self.tables.max_heading_words)

    @cached_property
    def words_view(self) -> DocStats:
        """What word-level rules read: this document, or when table-aware, its prose, headings
        and table labels (number cells left out) as a document of their own."""
        layout = self.layout
        if layout is None or not layout.n_table_lines:
            return self
        return DocStats(layout.labels)

    @cached_property
    def ngram_view(self) -> DocStats:
        """What the Gopher n-gram rules read: this document, or when table-aware, its words view
        (prose, headings and labels; the lines of a short caption alone would make any 4-gram "top")."""
        return self if self.layout is None else self.words_view

    @cached_property
    def is_number(self) -> np.ndarray:
        """True for number tokens (``1.2``, ``$``, ``12.5%``; ``filters/tables.py``)."""
        return np.fromiter(map(_number_token, self.words), dtype=bool, count=self.n_words)

    @cached_property
    def words(self) -> list[str]:
        return split_words(self.text)

    @cached_property
    def n_words(self) -> int:
        return len(self.words)

    @cached_property
    def word_props(self) -> np.ndarray:
        return np.fromiter(map(_PROPS.__getitem__, self.words), dtype=np.int64, count=self.n_words)

    @cached_property
    def word_lengths(self) -> np.ndarray:
        """Characters per word (int64)."""
        return self.word_props >> LENGTH_SHIFT

    @cached_property
    def non_symbol(self) -> np.ndarray:
        """True for words with at least one character that is not punctuation."""
        return (self.word_props & NON_SYMBOL).astype(bool)

    @cached_property
    def has_alpha(self) -> np.ndarray:
        """True for words with at least one letter."""
        return (self.word_props & HAS_ALPHA).astype(bool)

    @cached_property
    def stop_words_present(self) -> int:
        """How many distinct Gopher stop words occur (exact, case-sensitive match)."""
        if not self.n_words:
            return 0
        mask = int(np.bitwise_or.reduce(self.word_props >> STOP_SHIFT & 0xFF))
        return mask.bit_count()

    @cached_property
    def word_hashes(self) -> np.ndarray:
        return np.fromiter(map(hash, self.words), dtype=np.int64, count=self.n_words)

    @cached_property
    def splitlines(self) -> list[str]:
        """``str.splitlines()``: the lines the Gopher quality and C4 rules look at."""
        return self.text.splitlines()

    @cached_property
    def newline_lines(self) -> list[str]:
        """Lines split on runs of ``\\n`` (Gopher repetition's definition; may start/end empty)."""
        return _LINE_SPLIT.split(self.text)

    @cached_property
    def paragraphs(self) -> list[str]:
        """Paragraphs: the stripped text split on two or more newlines."""
        return _PARAGRAPH_SPLIT.split(self.text.strip())

    @cached_property
    def paragraph_duplicates(self) -> tuple[int, int]:
        """(count, characters) of paragraphs that repeat an earlier one."""
        return duplicate_elements(self.paragraphs)

    @cached_property
    def line_duplicates(self) -> tuple[int, int]:
        """(count, characters) of ``newline_lines`` that repeat an earlier one."""
        return duplicate_elements(self.newline_lines)

    def ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(hash, characters without separators) of every word n-gram, cached per n (the
        hashes of n-grams extend those of (n-1)-grams: one vector operation per n)."""
        cache = self.__dict__.setdefault("_ngrams", {})
        if n not in cache:
            if n > 1 and len(self.word_hashes) >= n:
                prev = self.ngrams(n - 1)[0]
                hashes = extend_ngram_hashes(prev, self.word_hashes, n)
            else:
                hashes = ngram_hashes(self.word_hashes, n)
            cache[n] = (hashes, ngram_char_lengths(self.word_lengths, n))
        return cache[n]

    def repeated_positions(self, n: int, first_n: int = 5) -> np.ndarray:
        """Positions of n-grams that occur at least twice, narrowed from the (n-1)-grams' for
        n > ``first_n`` (where an n-gram repeats, so does its (n-1)-word prefix)."""
        cache = self.__dict__.setdefault("_repeated", {})
        if n not in cache:
            base = self.repeated_positions(n - 1, first_n) if n > first_n else None
            cache[n] = repeated_positions(self.ngrams(n)[0], base)
        return cache[n]
