"""Gopher quality rules: drop documents that do not look like prose.

Thresholds: Gopher (Rae et al. 2021, appendix A, "MassiveText" quality filters), the defaults of
datatrove's ``GopherQualityFilter``. Words are spaCy-style tokens (``filters/words.py``);
"non-symbol" words have a character that is not punctuation. Each rule returns ``None``
(pass) or its reason code.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def mean_word_length(s: DocStats, cfg: GopherQualityConfig) -> str | None:
    lengths = s.word_lengths[s.non_symbol]
    if len(lengths) == 0:
        return "gopher_mean_word_length"
    mean = float(lengths.mean())
    if (cfg.min_avg_word_length is not None and mean < cfg.min_avg_word_length) or (
        cfg.max_avg_word_length is not None and mean > cfg.max_avg_word_length
    ):
        return "gopher_mean_word_length"
    return None


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


def rules(cfg: GopherQualityConfig) -> list:
    return [word_count, mean_word_length, symbol_ratio, bullet_lines, ellipsis_lines, alpha_words, stop_words]
