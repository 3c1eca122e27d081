"""Gopher quality rules: drop documents that do not look like prose.

Thresholds: Gopher (Rae et al. 2021, appendix A, "MassiveText" quality filters), the defaults of
datatrove's ``GopherQualityFilter``. Words are spaCy-style tokens (``filters/words.py``);
"non-symbol" words have a character that is not punctuation. Each rule returns ``None``
(pass) or its reason code.

Table-aware (``rules(cfg, tables)`` with an enabled :class:`filters.tables.TableConfig`, the finance
profile): the word rules read the prose and the table labels (``DocStats.words_view``), a number token
leaves the alphabetic-words denominator, a document short of words or stop words may be kept for its
labelled data rows, and two table checks are added: number soup (``table_unlabelled``) and XBRL/markup
residue (``markup_residue``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from filters.tables import TableConfig, is_style_line, is_tag
from filters.textstats import DocStats


@dataclass(frozen=True)
class GopherQualityConfig:
    enabled: bool = True
    min_doc_words: int | None = 50  # non-symbol words
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3  # characters, over non-symbol words
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1  # "#" and "..." per word
    max_bullet_lines_ratio: float | None = 0.9  # lines starting with "•" or "-"
    max_ellipsis_lines_ratio: float | None = 0.3  # lines ending with "..." or "…"
    min_alpha_words_ratio: float | None = 0.8  # words with a letter
    min_stop_words: int | None = 2  # distinct words of GOPHER_STOP_WORDS


def word_count(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    n = int(s.non_symbol.sum())
    if (cfg.min_doc_words is not None and n < cfg.min_doc_words) or (
        cfg.max_doc_words is not None and n > cfg.max_doc_words
    ):
        return "gopher_word_count"
    return None


def _mean_length_reason(lengths, cfg: GopherQualityConfig) -> str | None:
    """The mean word length (characters) of ``lengths`` outside [min_avg, max_avg]: a removal reason."""
    if len(lengths) == 0:
        return "gopher_mean_word_length"
    mean = float(lengths.mean())
    if (cfg.min_avg_word_length is not None and mean < cfg.min_avg_word_length) or (
        cfg.max_avg_word_length is not None and mean > cfg.max_avg_word_length
    ):
        return "gopher_mean_word_length"
    return None


def mean_word_length(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    return _mean_length_reason(s.word_lengths[s.non_symbol], cfg)


def symbol_ratio(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    if cfg.max_symbol_word_ratio is None:
        return None
    if s.n_words == 0:
        return "gopher_symbol_ratio"
    text = s.text
    if (
        text.count("#") / s.n_words > cfg.max_symbol_word_ratio
        or (text.count("...") + text.count("…")) / s.n_words > cfg.max_symbol_word_ratio
    ):
        return "gopher_symbol_ratio"
    return None


def bullet_lines(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    lines = s.splitlines
    if cfg.max_bullet_lines_ratio is None or not lines:
        return None
    bullets = sum(1 for line in lines if line.lstrip().startswith(("•", "-")))
    return "gopher_bullet_lines" if bullets / len(lines) > cfg.max_bullet_lines_ratio else None


def ellipsis_lines(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    lines = s.splitlines
    if cfg.max_ellipsis_lines_ratio is None or not lines:
        return None
    ending = sum(1 for line in lines if line.rstrip().endswith(("...", "…")))
    return "gopher_ellipsis_lines" if ending / len(lines) > cfg.max_ellipsis_lines_ratio else None


def alpha_words(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    if cfg.min_alpha_words_ratio is None:
        return None
    if s.n_words == 0 or s.has_alpha.sum() / s.n_words < cfg.min_alpha_words_ratio:
        return "gopher_alpha_words"
    return None


def stop_words(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    if cfg.min_stop_words is not None and s.stop_words_present < cfg.min_stop_words:
        return "gopher_stop_words"
    return None


def _is_table(s: DocStats) -> bool:
    """Enough labelled data rows to stand as a table without prose (``TableConfig.min_data_rows``)."""
    return s.layout is not None and s.layout.data_rows >= s.tables.min_data_rows


def _view_words(s: DocStats) -> tuple[DocStats, np.ndarray | None]:
    """(the words view, mask of its words that count as words: all, or all but number tokens)."""
    view = s.words_view
    return view, (None if s.tables.numbers_are_words else ~view.is_number)


def table_word_count(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    n = int(s.non_symbol.sum())
    if cfg.max_doc_words is not None and n > cfg.max_doc_words:
        return "gopher_word_count"
    if cfg.min_doc_words is not None and n < cfg.min_doc_words and not _is_table(s):
        return "gopher_word_count"
    return None


def table_mean_word_length(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    view, counted = _view_words(s)
    mask = view.non_symbol if counted is None else view.non_symbol & counted
    return _mean_length_reason(view.word_lengths[mask], cfg)


def table_alpha_words(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    """Words with a letter among the words of the view that are not punctuation (Gopher counted
    whitespace-separated words, so "receivable," or "(Note" was one word with letters) and, unless
    ``numbers_are_words``, not numbers."""
    if cfg.min_alpha_words_ratio is None:
        return None
    view, counted = _view_words(s)
    counted = view.non_symbol if counted is None else view.non_symbol & counted
    n = int(counted.sum())
    if n == 0 or view.has_alpha.sum() / n < cfg.min_alpha_words_ratio:
        return "gopher_alpha_words"
    return None


def table_stop_words(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    """Stop words in the prose and labels; a table with little prose (fewer than ``min_doc_words``
    words outside the table rows) needs none: "Total current assets | 125,435" is not a sentence."""
    if cfg.min_stop_words is None or s.words_view.stop_words_present >= cfg.min_stop_words:
        return None
    if _is_table(s) and len(s.layout.prose.split()) < (cfg.min_doc_words or 0):
        return None
    return "gopher_stop_words"


def table_unlabelled(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    """Number soup: too many table/numeric lines without a label cell."""
    layout = s.layout
    if layout.n_table_lines and layout.unlabelled_rows > s.tables.max_unlabelled_rows * layout.n_table_lines:
        return "table_unlabelled"
    return None


def table_duplicate_rows(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    """A table row repeated over and over (the repetition rules read prose only when table-aware)."""
    layout = s.layout
    if layout.n_table_lines and layout.duplicate_rows > s.tables.max_duplicate_rows * layout.n_table_lines:
        return "table_duplicate_rows"
    return None


def markup_residue(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    """XBRL tags and context ids (``us-gaap:Revenues``, ``c-12``) and lone CSS declarations
    (``display:none;``) left in the text by an extractor."""
    tokens = s.text.split()
    found = sum(map(is_tag, tokens)) + sum(len(line.split()) for line in s.text.split("\n") if is_style_line(line))
    if tokens and found > s.tables.max_tag_tokens * len(tokens):
        return "markup_residue"
    return None


def rules(cfg: GopherQualityConfig, tables: TableConfig | None = None) -> list:
    if tables is not None and tables.enabled:
        return [table_word_count, table_mean_word_length, symbol_ratio, bullet_lines, ellipsis_lines,
                table_alpha_words, table_stop_words, table_unlabelled, table_duplicate_rows, markup_residue]
    return [word_count, mean_word_length, symbol_ratio, bullet_lines, ellipsis_lines, alpha_words, stop_words]
