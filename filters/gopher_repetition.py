"""Gopher repetition rules: drop documents made of repeated lines, paragraphs or n-grams.

Thresholds: Gopher (Rae et al. 2021, "Scaling Language Models", Table A1), the defaults of
datatrove's ``GopherRepetitionFilter``. Fractions of lines/paragraphs count elements; the
"character" fractions divide by ``len(text)``. Lines are split on runs of ``\\n``, paragraphs
on two or more. Each rule returns ``None`` (pass) or its reason code.

Table-aware (a ``DocStats`` with a layout, the finance profile): the line and paragraph rules count
repeated prose only, over every line or paragraph with a letter or digit; the n-gram rules read the
words view (prose, headings and table labels without the number cells, ``DocStats.ngram_view``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from filters.ngrams import duplicate_elements, duplicated_ngram_chars, top_ngram_chars
from filters.tables import PROSE, is_style_line
from filters.textstats import DocStats

_CONTENT = re.compile(r"[^\W_]")  # a letter or digit


@dataclass(frozen=True)
class GopherRepetitionConfig:
    enabled: bool = True
    dup_para_frac: float | None = 0.30  # Gopher Table A1: duplicate paragraph fraction
    dup_para_char_frac: float | None = 0.20  # duplicate paragraph character fraction
    dup_line_frac: float | None = 0.30  # duplicate line fraction
    dup_line_char_frac: float | None = 0.20  # duplicate line character fraction
    # top n-gram character fraction, n -> max
    top_ngram_frac: dict[int, float] = field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    # duplicated n-gram character fraction, n -> max
    dup_ngram_frac: dict[int, float] = field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )


def _prose_duplicates(s: DocStats) -> tuple[int, int, int, int, int, int]:
    """Table-aware line and paragraph duplicates: (duplicate prose lines, their characters, content
    lines, duplicate prose paragraphs, their characters, paragraphs). Only prose repeats count (table
    rows and headings repeat "Year Ended" by design; a repeated row is ``table_duplicate_rows``), and
    only lines with a letter or digit count at all (a lone bullet or zero-width space is layout; a lone
    CSS declaration is style residue, counted by ``markup_residue``)."""
    cache = s.__dict__.get("_prose_dups")
    if cache is None:
        layout = s.layout
        content = [(line, kind) for line, kind in zip(layout.lines, layout.kinds)
                   if _CONTENT.search(line) and not is_style_line(line)]
        n_lines, n_chars = duplicate_elements([line for line, kind in content if kind == PROSE])
        prose_paras, n_paras, block = [], 0, []
        for line, kind in [*zip(layout.lines, layout.kinds), ("", PROSE)]:  # paragraphs: blank-line separated
            if line.strip():
                block.append((line, kind))
                continue
            if any(_CONTENT.search(text) for text, _ in block):
                n_paras += 1
                if any(k == PROSE for _, k in block):
                    prose_paras.append("\n".join(text for text, _ in block))
            block = []
        p_dups, p_chars = duplicate_elements(prose_paras)
        cache = (n_lines, n_chars, max(1, len(content)), p_dups, p_chars, max(1, n_paras))
        s.__dict__["_prose_dups"] = cache
    return cache


def dup_para_frac(s: DocStats, cfg: GopherRepetitionConfig) -> str | None:
    if cfg.dup_para_frac is None:
        return None
    if s.layout is not None:
        found = _prose_duplicates(s)
        frac = found[3] / found[5]
    else:
        frac = s.paragraph_duplicates[0] / len(s.paragraphs)
    return "gopher_dup_para_frac" if frac > cfg.dup_para_frac else None


def dup_para_char_frac(s: DocStats, cfg: GopherRepetitionConfig) -> str | None:
    if cfg.dup_para_char_frac is None:
        return None
    chars = _prose_duplicates(s)[4] if s.layout is not None else s.paragraph_duplicates[1]
    return "gopher_dup_para_char_frac" if chars / len(s.text) > cfg.dup_para_char_frac else None


def dup_line_frac(s: DocStats, cfg: GopherRepetitionConfig) -> str | None:
    if cfg.dup_line_frac is None:
        return None
    if s.layout is not None:
        found = _prose_duplicates(s)
        frac = found[0] / found[2]
    else:
        frac = s.line_duplicates[0] / len(s.newline_lines)
    return "gopher_dup_line_frac" if frac > cfg.dup_line_frac else None


def dup_line_char_frac(s: DocStats, cfg: GopherRepetitionConfig) -> str | None:
    if cfg.dup_line_char_frac is None:
        return None
    chars = _prose_duplicates(s)[1] if s.layout is not None else s.line_duplicates[1]
    return "gopher_dup_line_char_frac" if chars / len(s.text) > cfg.dup_line_char_frac else None


def _too_short(s: DocStats) -> bool:
    """Table-aware: the words view is too short for n-gram statistics (``TableConfig.min_ngram_words``)."""
    return s.layout is not None and int(s.ngram_view.non_symbol.sum()) < s.tables.min_ngram_words


def top_ngram(n: int):
    """Rule: the most frequent n-gram covers more than the allowed fraction of characters."""

    def rule(s: DocStats, cfg: GopherRepetitionConfig) -> str | None:
        if _too_short(s):
            return None
        s = s.ngram_view
        hashes, lengths = s.ngrams(n)
        if len(hashes) and top_ngram_chars(hashes, lengths, n) / len(s.text) > cfg.top_ngram_frac[n]:
            return f"gopher_top_{n}gram"
        return None

    rule.__name__ = f"top_{n}gram"
    return rule


def dup_ngram(n: int):
    """Rule: repeated n-grams cover more than the allowed fraction of characters."""

    def rule(s: DocStats, cfg: GopherRepetitionConfig) -> str | None:
        if _too_short(s):
            return None
        s = s.ngram_view
        positions = s.repeated_positions(n, first_n=min(cfg.dup_ngram_frac))
        if len(positions) == 0:
            return None
        hashes, lengths = s.ngrams(n)
        if duplicated_ngram_chars(hashes, lengths, n, positions) / len(s.text) > cfg.dup_ngram_frac[n]:
            return f"gopher_dup_{n}gram"
        return None

    rule.__name__ = f"dup_{n}gram"
    return rule


def rules(cfg: GopherRepetitionConfig) -> list:
    """The rules in evaluation order (cheapest first, as datatrove)."""
    return (
        [dup_para_frac, dup_para_char_frac, dup_line_frac, dup_line_char_frac]
        + [top_ngram(n) for n in sorted(cfg.top_ngram_frac)]
        + [dup_ngram(n) for n in sorted(cfg.dup_ngram_frac)]
    )
