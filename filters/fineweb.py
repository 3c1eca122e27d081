"""FineWeb quality rules (Penedo et al. 2024, "The FineWeb Datasets", section 3.3).

Rules FineWeb added on top of Gopher and C4 after ablations on web text: enough lines ending in
punctuation, not mostly short lines, little text in duplicated lines, and not a list (too many
newlines per word). Defaults are datatrove's ``FineWebQualityFilter``. Lines are the non-blank
lines of ``text.split("\\n")``. Each rule returns ``None`` (pass) or its reason code.

Table-aware (``layout=`` given, the finance profile): the three line rules read the prose lines only
(``filters/tables.py``): a table row does not end in a full stop, is often short and may repeat a
heading ("Three Months Ended") on purpose. A document without prose lines passes them; the newline
ratio still reads the whole text. A table with little prose (``tabular``: labelled data rows and fewer
prose words than Gopher's document minimum, as for the stop-word rule) passes the punctuation and
short-line rules: its prose is a title ("NOTE 4 — Inventories"), not sentences.
"""

from __future__ import annotations

from dataclasses import dataclass

from filters.ngrams import duplicate_elements
from filters.tables import PROSE, Layout
from filters.textstats import TERMINAL_PUNCTUATION
from filters.words import split_words


@dataclass(frozen=True)
class FineWebConfig:
    enabled: bool = True
    line_punct_thr: float = 0.12  # min fraction of lines ending in terminal punctuation
    line_punct_exclude_zero: bool = False  # let documents with no such line pass
    short_line_thr: float = 0.67  # max fraction of short lines
    short_line_length: int = 30  # characters: a line this long or shorter is short
    char_duplicates_ratio: float = 0.01  # max characters in duplicated lines / characters
    new_line_ratio: float = 0.3  # max newlines per word


_TERMINAL = tuple(TERMINAL_PUNCTUATION)
_TERMINAL_OR_COLON = (*_TERMINAL, ":")


def fineweb_rules(
    text: str, cfg: FineWebConfig, n_words: int | None = None, annotate: bool = False,
    layout: Layout | None = None, tabular: bool = False,
) -> list[str]:
    """Failing reason codes in order (only the first unless ``annotate``). ``n_words`` may be
    passed when the caller already tokenized ``text``; ``layout`` (of ``text``): table-aware;
    ``tabular``: a table with little prose, whose title lines the punctuation and short-line rules skip."""
    failed: list[str] = []
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return ["fineweb_empty"]
    if layout is not None:
        lines = [] if tabular else [line for line, kind in zip(layout.lines, layout.kinds)
                                    if kind == PROSE and line.strip()]
    ends = _TERMINAL if layout is None else _TERMINAL_OR_COLON  # "... as follows (in millions):" leads a table
    ratio = sum(1 for line in lines if line.endswith(ends)) / len(lines) if lines else 1.0
    if ratio < cfg.line_punct_thr and not (ratio == 0 and cfg.line_punct_exclude_zero):
        failed.append("fineweb_punct_lines")
        if not annotate:
            return failed
    if lines and sum(1 for line in lines if len(line) <= cfg.short_line_length) / len(lines) > cfg.short_line_thr:
        failed.append("fineweb_short_lines")
        if not annotate:
            return failed
    chars = len(text) - text.count("\n")
    if chars == 0 or duplicate_elements(lines)[1] / chars > cfg.char_duplicates_ratio:
        failed.append("fineweb_dup_line_chars")
        if not annotate:
            return failed
    n_words = len(split_words(text)) if n_words is None else n_words
    if n_words == 0 or text.count("\n") / n_words > cfg.new_line_ratio:
        failed.append("fineweb_newline_ratio")
    return failed
