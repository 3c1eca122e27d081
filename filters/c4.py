"""C4 rules (Raffel et al. 2020, section 2.2): a line modifier and document rules.

The line modifier keeps lines that look like sentences and drops the rest (boilerplate:
navigation, cookie notices, "javascript required"). The document is removed if a kept line
contains "lorem ipsum" (placeholder text) or a curly bracket (code), or if fewer than
``min_num_sentences`` sentences survive. Semantics follow datatrove's ``C4QualityFilter``
with ``split_paragraph=True`` (lines are ``str.splitlines()``, stripped).

Threshold choices (see docs/filtering.md):
- ``filter_no_terminal_punct=False``: C4 keeps only lines ending in ``. ! ? "``; FineWeb's
  ablations (Penedo et al. 2024) found this removes too much good text (lists, headings,
  tables) and dropped it; we follow FineWeb. Set it to true for the paper's rule.
- ``min_words_per_line=3``, ``min_num_sentences=5``, ``max_word_length=1000``: C4's values.

Table-aware (``apply_c4(..., layout=...)``, the finance profile): table rows, numeric lines and table
headings (``filters/tables.py``) are kept whatever their word count (``2019 | 2018`` is a header, not
boilerplate), the lorem-ipsum, brace, javascript and policy checks still apply to them, and a document
with ``min_data_rows`` labelled data rows has enough content without ``min_num_sentences`` sentences.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from filters.tables import PROSE, Layout
from filters.words import split_words

CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")  # Wikipedia-style citation marks
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
# spaCy Sentencizer.default_punct_chars (abridged to the scripts of our corpora)
SENTENCE_END = frozenset("!.?։؟۔܀܁܂߹।॥၊။።፧፨᙮᜵᜶‼‽⁇⁈⁉⸮⸼﹒﹖﹗！．？｡。")


@dataclass(frozen=True)
class C4Config:
    enabled: bool = True
    modify_lines: bool = True  # write the kept lines back as the document's text
    remove_citations: bool = True
    filter_no_terminal_punct: bool = False  # FineWeb's choice; C4 paper: True
    min_num_sentences: int = 5  # C4: pages with fewer sentences are dropped (-1: off)
    min_words_per_line: int = 3  # C4: lines with fewer words are dropped (-1: off)
    max_word_length: int = 1000  # C4 code: lines with a longer word are dropped (-1: off)
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


def _is_punct(token: str) -> bool:
    return all(unicodedata.category(c).startswith("P") for c in token)


def count_sentences(line: str) -> int:
    """Sentences in one line, as spaCy's rule-based sentencizer counts them: a new sentence
    starts at the first non-punctuation token after a token that is ``.``, ``!`` or ``?``."""
    tokens = split_words(line)
    if not tokens:
        return 0
    n, seen_end = 1, False
    for token in tokens:
        if token in SENTENCE_END:
            seen_end = True
        elif seen_end and not _is_punct(token):
            n += 1
            seen_end = False
    return n


def c4_lines(text: str, cfg: C4Config, layout: Layout | None = None) -> tuple[list[str], str | None]:
    """(kept lines, reason) for a document: the reason is ``c4_lorem_ipsum`` or
    ``c4_curly_bracket`` when a kept line has one (the scan stops there), else None. With a
    ``layout`` of ``text``, its table lines are exempt from the words-per-line minimum."""
    kept: list[str] = []
    check_js, check_policy = cfg.filter_javascript, cfg.filter_policy
    if layout is None:
        lines, table = text.splitlines(), None
    else:
        lines, table = layout.lines, [k != PROSE for k in layout.kinds]
    for i, line in enumerate(lines):
        line = line.strip()
        words = line.split()
        if len(words) < cfg.min_words_per_line and not (table and table[i] and words):
            continue  # (C4 checks long words first; both drop the line)
        if (
            cfg.max_word_length != -1
            and len(line) > cfg.max_word_length
            and any(len(w) > cfg.max_word_length for w in words)
        ):
            continue
        if cfg.remove_citations and "[" in line:
            line = CITATION_RE.sub("", line)
        if cfg.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith("...")):
            continue
        lower = line.lower()
        if cfg.filter_lorem_ipsum and "lorem ipsum" in lower:
            return kept, "c4_lorem_ipsum"
        if check_js and "javascript" in lower:
            continue
        if cfg.filter_curly_bracket and "{" in line:
            return kept, "c4_curly_bracket"
        if check_policy and any(p in lower for p in POLICY_SUBSTRINGS):
            continue
        kept.append(line)
    return kept, None


def min_sentences(kept: list[str], cfg: C4Config) -> str | None:
    """``c4_min_sentences`` when the kept lines hold fewer than ``min_num_sentences`` sentences.
    Every kept line has at least one, so counting is needed only for short documents."""
    if cfg.min_num_sentences == -1 or len(kept) >= cfg.min_num_sentences:
        return None
    total = 0
    for line in kept:
        total += count_sentences(line)
        if total >= cfg.min_num_sentences:
            return None
    return "c4_min_sentences"


def apply_c4(text: str, cfg: C4Config, layout: Layout | None = None,
             min_data_rows: int | None = None) -> tuple[str, str | None]:
    """(new text, reason or None). The new text is the kept lines joined by ``\\n`` when
    ``modify_lines``, else the original text. ``layout`` (of ``text``) and ``min_data_rows``:
    table-aware (module docstring)."""
    kept, reason = c4_lines(text, cfg, layout)
    if reason is None and not (layout is not None and min_data_rows is not None
                               and layout.data_rows >= min_data_rows):
        reason = min_sentences(kept, cfg)
    new_text = "\n".join(kept).strip() if cfg.modify_lines else text
    return new_text, reason
