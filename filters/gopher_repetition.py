"""Gopher repetition rules: drop documents made of repeated lines, paragraphs or n-grams.

Thresholds: Gopher (Rae et al. 2021, "Scaling Language Models", Table A1), the defaults of
datatrove's ``GopherRepetitionFilter``. Fractions of lines/paragraphs count elements; the
"character" fractions divide by ``len(text)``. Lines are split on runs of ``\\n``, paragraphs
on two or more. Each rule returns ``None`` (pass) or its reason code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from filters.ngrams import duplicated_ngram_chars, top_ngram_chars
from filters.textstats import DocStats


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


def dup_para_frac(s: DocStats, cfg: GopherRepetitionConfig) -> str | None:
    if cfg.dup_para_frac is not None and s.paragraph_duplicates[0] / len(s.paragraphs) > cfg.dup_para_frac:
        return "gopher_dup_para_frac"
    return None


def dup_para_char_frac(s: DocStats, cfg: GopherRepetitionConfig) -> str | None:
    if (
        cfg.dup_para_char_frac is not None
        and s.paragraph_duplicates[1] / len(s.text) > cfg.dup_para_char_frac
    ):
        return "gopher_dup_para_char_frac"
    return None


def dup_line_frac(s: DocStats, cfg: GopherRepetitionConfig) -> str | None:
    if cfg.dup_line_frac is not None and s.line_duplicates[0] / len(s.newline_lines) > cfg.dup_line_frac:
        return "gopher_dup_line_frac"
    return None


def dup_line_char_frac(s: DocStats, cfg: GopherRepetitionConfig) -> str | None:
    if cfg.dup_line_char_frac is not None and s.line_duplicates[1] / len(s.text) > cfg.dup_line_char_frac:
        return "gopher_dup_line_char_frac"
    return None


def top_ngram(n: int):
    """Rule: the most frequent n-gram covers more than the allowed fraction of characters."""

    def rule(s: DocStats, cfg: GopherRepetitionConfig) -> str | None:
        hashes, lengths = s.ngrams(n)
        if len(hashes) and top_ngram_chars(hashes, lengths, n) / len(s.text) > cfg.top_ngram_frac[n]:
            return f"gopher_top_{n}gram"
        return None

    rule.__name__ = f"top_{n}gram"
    return rule


def dup_ngram(n: int):
    """Rule: repeated n-grams cover more than the allowed fraction of characters."""

    def rule(s: DocStats, cfg: GopherRepetitionConfig) -> str | None:
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
