"""Table lines and mostly-numeric lines in plain text, so that prose rules do not judge a table as prose.

Financial text carries tables: a filing's balance sheet, an annual report's segment table, a 10-Q's
"Land and buildings $16,352 $16,216". Extracted to text, a table row is one line in one of three shapes:

- cells joined by `` | `` (what the clean stage's EDGAR/HTML table extraction and TAT-QA write);
- cells aligned by tabs or runs of two or more spaces (text filings, ``pdftotext -layout``);
- a label followed by numbers separated by single spaces (the clean stage folds runs of spaces, so
  aligned columns arrive in this shape): the line ends in numeric tokens and not in sentence punctuation.

A line in none of these shapes may still be *mostly numeric* (``2019 2018 2017``, ``June 29, 2024``).
Short caption lines right above a table or between its rows (``Current assets:``, ``(In millions)``)
are table *headings*. Everything else is prose.

A row of cells without a digit is a table heading only above or between table rows; anywhere else it
is prose (a menu: ``Home | Markets | Contact``). A lone number is a page number, not a row.

With the finance profile (``filters/rules.py``), word-level rules (``filters/gopher_quality.py``,
``filters/c4.py``, ``filters/fineweb.py``, ``filters/gopher_repetition.py``) read the prose and the table
labels of a :class:`Layout`, and three table checks use it (``gopher_quality``: ``table_unlabelled``,
``table_duplicate_rows``, ``markup_residue``): a table must be labelled (number soup is not), and a
document may be kept for its labelled data rows when it has little prose. Pure functions, no Beam.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

CELL_SEP = " | "  # the cell separator the clean stage writes (``filters/html.py``, EDGAR extraction)

PROSE, TABLE, NUMERIC, HEADING = "prose", "table", "numeric", "heading"

# A number token as tables print it: optional sign/parenthesis/currency, digits with thousands
# separators and decimals, optional percent or scale suffix, optional closing parenthesis or footnote
# comma. ``$``, ``%`` and dashes alone stand for an empty or nil cell ("—" is SEC style for zero).
_NUMBER = re.compile(
    r"[(\[]?[-+−–]?[$€£¥]?\(?[-+−]?(?:\d{1,3}(?:[,\u202f]\d{3})+|\d+)(?:[.,]\d+)?"
    r"(?:%|x|bps?|pts?|[kKmMbB]n?|p)?\)?[\]),;:*]?"
)
_NIL = frozenset({"$", "€", "£", "¥", "%", "-", "—", "–", "−", "$—", "$-", "—%", "n/a", "N/A", "nm", "NM", "*"})
_TERMINAL = (".", "!", "?", ";", '."', ".”", ":")  # a line ending in these reads as a sentence (or leads one)
_ALIGNED = re.compile(r"\t+| {2,}")
_SENTENCE_BREAK = re.compile(r"[a-z)][.;] +[A-Z]")  # "... targets. These PSUs ...": two sentences, not a label
MAX_HEADING_RUN = 3  # "LIABILITIES AND EQUITY:", "Current liabilities:", "(In millions)": a table's captions
MAX_LABEL_WORDS = 16  # a row label ("Total property, plant and equipment, net") is a phrase, not a paragraph
_LETTERS = re.compile(r"[^\W\d_]{2,}")  # a label has a run of two or more letters
# XBRL / markup residue: ``us-gaap:RevenueFromContractWithCustomer``, ``dei:EntityCentralIndexKey``,
# ``iso4217:USD``, ``xbrli:shares``: a namespace prefix, a colon and a CamelCase local name
_TAG = re.compile(r"[a-z][a-z0-9-]*:[A-Za-z][A-Za-z0-9_]*")
_CONTEXT_ID = re.compile(r"(?:[A-Za-z]+_)?[A-Za-z]*\d[\w-]*_[\w-]+")  # FY2023Q1_us-gaap_Revenues: context refs


# a CSS declaration alone on a line (``blacklining:none;``, ``display:none;``): style residue of an HTML
# conversion, not text
_CSS_LINE = re.compile(r"\s*[a-z][a-z-]*\s*:\s*[^\s;:]+(?:\s+[^\s;:]+)*\s*;\s*")


def is_style_line(line: str) -> bool:
    """A line holding only a CSS declaration (``blacklining:none;``)."""
    return _CSS_LINE.fullmatch(line) is not None


def is_number(token: str) -> bool:
    """A table number or nil cell token: ``1,234``, ``$16,352``, ``(5.2)``, ``12.5%``, ``—``, ``2019``."""
    return token in _NIL or _NUMBER.fullmatch(token) is not None


def is_label(cell: str) -> bool:
    """A cell that names something: it has a run of two or more letters that is not an XBRL tag."""
    return any(not _TAG.fullmatch(tok) for tok in cell.split() if _LETTERS.search(tok))


def is_tag(token: str) -> bool:
    """XBRL or markup residue: a ``prefix:LocalName`` tag or an XBRL context id."""
    if _TAG.fullmatch(token) is not None:
        return True
    # (a context id is short; the length bound also keeps the backtracking of _CONTEXT_ID small)
    return 8 < len(token) <= 80 and "_" in token and _CONTEXT_ID.fullmatch(token) is not None


def split_cells(line: str) -> list[str] | None:
    """The cells of a table row, or None when the line is not one (shapes: module docstring)."""
    s = line.strip()
    if "|" in s:
        cells = [c.strip() for c in s.strip("|").split("|")] if CELL_SEP in s or s.startswith("|") else []
        cells = [c for c in cells if c]
        if len(cells) >= 2:
            return cells
    if "\t" in s or "  " in s:
        cells = [c for c in _ALIGNED.split(s) if c]
        if len(cells) >= 2 and sum(all(map(is_number, c.split())) for c in cells[1:]) * 2 >= len(cells) - 1:
            return cells  # aligned columns: most cells after the first are numbers
    tokens = s.split()
    if len(tokens) < 2 or s.endswith(_TERMINAL):
        return None
    n = 0
    while n < len(tokens) and is_number(tokens[-1 - n]):
        n += 1
    if n == 0 or n == len(tokens):
        return None
    label = " ".join(tokens[: len(tokens) - n])
    if len(tokens) - n > MAX_LABEL_WORDS or _SENTENCE_BREAK.search(label):
        return None  # a wrapped sentence that ends in a figure, not a row label
    if n >= 2 or (n == 1 and not label.endswith(",") and _is_money(tokens[-1])):
        return [label, *tokens[len(tokens) - n:]]  # "Land and buildings $16,352 $16,216"
    return None


def _is_money(token: str) -> bool:
    """A number with table formatting (currency, thousands separator, parenthesis, percent)."""
    return token not in _NIL and any(c in token for c in "$€£¥,()%") and not token.endswith(",")


def is_numeric_line(line: str, min_fraction: float = 0.5) -> bool:
    """At least two and ``min_fraction`` of the line's tokens are numbers (``2019 2018 2017``,
    ``June 29, 2024``); a lone number is a page number or a footnote mark, not a row."""
    tokens = line.split()
    n = sum(map(is_number, tokens))
    figures = sum(1 for t in tokens if t not in _NIL and is_number(t))  # "NOTE 4 — Inventories" has one
    return figures >= 2 and n >= min_fraction * len(tokens)


@dataclass(frozen=True)
class TableConfig:
    """Table-aware judging (the finance profile turns it on; see ``filters/rules.py``)."""

    enabled: bool = False
    # a number token is neither a word with letters nor one without: it leaves the denominator of
    # the alphabetic-words ratio (Gopher's rule targets symbol soup, and a figure in "was $1.2 billion" is
    # prose); true: datatrove's count, where a number is a word without letters
    numbers_are_words: bool = False
    # caption/heading lines next to a table: at most this many words and no sentence punctuation
    # (calibrated on the dev half of ../shared/realworld: "(In millions, except per-share amounts)" fits,
    # a sentence leading a table does not)
    max_heading_words: int = 8
    # a document with fewer words than Gopher's minimum or fewer sentences than C4's is still kept
    # when it has this many labelled data rows (a label cell and a number cell): two rows make a table
    # (a figure and another to read it against); every TAT-QA table of the dev half has at least two
    min_data_rows: int = 2
    # number soup: at most this fraction of table/numeric lines may sit in a table block (a run of
    # table, numeric and heading lines) without a single label cell or heading (a majority: most of the
    # tables are numbers nobody named)
    max_unlabelled_rows: float = 0.5
    # the Gopher n-gram rules read the prose and labels only when they hold this many words: their
    # limits are character fractions that any one 4-gram exceeds in a caption of 20 words (Gopher's
    # own document minimum, Rae et al. 2021 appendix A: 50 words)
    min_ngram_words: int = 50
    # repeated rows: at most this fraction of table/numeric lines may repeat an earlier one
    # (Gopher's duplicate-line fraction, Rae et al. 2021 Table A1, applied to rows)
    max_duplicate_rows: float = 0.3
    # XBRL/markup residue: at most this fraction of tokens may be ``prefix:Name`` tags, context ids or
    # lone CSS declarations (dev half of ../shared/realworld: finance documents reach 0.029 at most, from
    # "blacklining:none;" lines of one prospectus; XBRL residue is 0.3 and more)
    max_tag_tokens: float = 0.05


@dataclass(frozen=True)
class Row:
    cells: tuple[str, ...]

    @cached_property
    def labelled(self) -> bool:
        return any(is_label(c) for c in self.cells)

    @cached_property
    def has_number(self) -> bool:
        return any(all(map(is_number, c.split())) and c not in _NIL for c in self.cells)


class Layout:
    """The lines of one text, each classified as prose, table, numeric or heading."""

    def __init__(self, text: str, max_heading_words: int = TableConfig.max_heading_words):
        self.lines = text.split("\n")
        kinds: list[str] = []
        rows: list[Row | None] = []
        text_rows = []  # cells without a digit: a menu or a header, decided below
        for line in self.lines:
            cells = split_cells(line) if line.strip() else None
            if cells is not None:
                row = Row(tuple(cells))
                if any(c.isdigit() for c in line):  # a figure or a date: a table row
                    kinds.append(TABLE)
                    rows.append(row)
                else:
                    text_rows.append(len(kinds))
                    kinds.append(PROSE)
                    rows.append(None)
            elif line.strip() and is_numeric_line(line):
                kinds.append(NUMERIC)
                rows.append(Row(tuple(line.split())))
            else:
                kinds.append(PROSE)
                rows.append(None)
        # headings: up to MAX_HEADING_RUN short lines without sentence punctuation directly above (or
        # between) table rows, and rows of cells without digits ("Fiscal Year | Leases | Leases") directly
        # above rows with figures. Anything else is prose: "Home | Markets | Contact" is a menu, and so is
        # a long list of short items.
        run, figures = -1, False  # headings so far above the next table row (-1: no row below); its figures
        is_text_row = set(text_rows)
        for i in range(len(self.lines) - 1, -1, -1):
            line = self.lines[i].strip()
            if kinds[i] in (TABLE, NUMERIC):
                run, figures = 0, rows[i].has_number
            elif not line:
                continue
            elif 0 <= run < MAX_HEADING_RUN and (
                (figures and i in is_text_row)
                or (i not in is_text_row and len(line.split()) <= max_heading_words
                    and not line.endswith(_TERMINAL[:-1]))
            ):
                kinds[i] = HEADING
                run += 1
            else:
                run = -1
        self.kinds = kinds
        self.rows = rows

    @cached_property
    def table_rows(self) -> list[Row]:
        return [r for r in self.rows if r is not None]

    @cached_property
    def n_table_lines(self) -> int:
        return len(self.table_rows)

    @cached_property
    def data_rows(self) -> int:
        """Rows with a label cell and a number cell."""
        return sum(1 for r in self.table_rows if r.labelled and r.has_number)

    @cached_property
    def unlabelled_rows(self) -> int:
        """Table and numeric lines in blocks (runs of non-prose lines, blank lines inside allowed)
        where no row has a label and there is no heading: numbers nobody named."""
        total = block_rows = 0
        labelled = False
        for line, kind, row in zip(self.lines, self.kinds, self.rows):
            if kind == PROSE and line.strip():
                total += 0 if labelled else block_rows
                block_rows, labelled = 0, False
            elif kind == HEADING or (row is not None and row.labelled):
                labelled = True
            elif row is not None:
                block_rows += 1
        return total + (0 if labelled else block_rows)

    @cached_property
    def prose_lines(self) -> list[str]:
        return [line for line, k in zip(self.lines, self.kinds) if k == PROSE]

    @cached_property
    def prose(self) -> str:
        return "\n".join(self.prose_lines)

    @cached_property
    def labels(self) -> str:
        """The prose, the headings and the label cells of table rows, one line each: the text that
        word-level rules read (numbers stay in the cells, out of this view)."""
        out = []
        for line, kind, row in zip(self.lines, self.kinds, self.rows):
            if kind in (PROSE, HEADING):
                out.append(line)
            elif row is not None:
                out.append(" ".join(c for c in row.cells if not all(map(is_number, c.split()))))
        return "\n".join(out)

    @cached_property
    def duplicate_rows(self) -> int:
        """Table and numeric lines equal to an earlier one (a row pasted over and over)."""
        lines = [line.strip() for line, row in zip(self.lines, self.rows) if row is not None]
        return len(lines) - len(set(lines))

    def is_table_line(self, i: int) -> bool:
        return self.kinds[i] != PROSE


def table_line_mask(text: str) -> list[bool]:
    """Per line of ``text.split("\\n")``: True for a table row, numeric line or table heading."""
    layout = Layout(text)
    return [k != PROSE for k in layout.kinds]
