"""HTML detection and main-content extraction.

Extractor choice (measured on the 23 hand-checked newspaper4k pages, see
benchmarks/RESULTS.md "HTML extraction"): trafilatura in precision mode without its
fallback extractors has the best token F1 against the hand-checked text; Resiliparse is
several times faster (pages/s of both: ``make bench-html``) and stays selectable
(``--html-extractor resiliparse``) for corpora where HTML dominates and speed matters more.

Pages that are not articles (press releases, exhibits, investor pages, handbook sections) defeat a
main-content extractor: it returns nothing, or a stray paragraph. :func:`extract_text_info` then
falls back to the page's full visible text (``filters/edgar.py``'s renderer: blocks as lines, table
rows as `` | ``-joined lines) when the main content is empty or under ``FALLBACK_RATIO`` of the
visible text; the clean stage counts these pages (``html_fulltext_fallback`` in stats.json).
"""

from __future__ import annotations

import re

_HTML_START = re.compile(r"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])",
                         re.IGNORECASE | re.DOTALL)
_HTML_TAGS = re.compile(r"<(?:head|body|div|p|meta|script|title)[\s>/]", re.IGNORECASE)

EXTRACTORS = ("trafilatura", "trafilatura-recall", "resiliparse")
DEFAULT_EXTRACTOR = "trafilatura"
# Full-text fallback below this main-content / visible-text ratio (characters). Measured (issue 20):
# the 30 hand-checked news pages of ../shared/corpora/html have ratios 0.063-0.92, all with main-content
# F1 >= 0.82, so none falls back; the WARC sample's pages under 0.05 are index pages and handbook
# sections where trafilatura keeps one paragraph of 14 KB (0.002-0.036), and filings' exhibits
# (prospectus, 6-K, SC 13G) give 0.
FALLBACK_RATIO = 0.05
# Rendering the visible text costs ~18% of trafilatura's time; Resiliparse's full text costs ~5% and
# bounds it: our rendering was at most 1.42x its length on those 314 pages (table separators), so main
# content >= 2 x 5% of Resiliparse's length is over 5% of ours, and 288 of 314 pages stop there.
BOUND_MARGIN = 2.0


def looks_like_html(text: str) -> bool:
    """True when ``text`` is an HTML page rather than prose that mentions a tag.

    A page starts with a doctype or ``<html>``, or (fragments) has many structural tags
    in its first 4 KB.
    """
    head = text[:4096]
    if _HTML_START.match(head):
        return True
    return len(_HTML_TAGS.findall(head)) >= 5 and head.lstrip().startswith("<")


def extract_resiliparse(html: str) -> str:
    """Main-content text with Resiliparse (C++ DOM parser and boilerplate removal)."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    return extract_plain_text(tree, main_content=True, alt_texts=False, links=False,
                              list_bullets=True, noscript=False, form_fields=False)


def extract_trafilatura(html: str, favor_precision: bool = True) -> str:
    """Main-content text with trafilatura (lxml + boilerplate heuristics).

    ``fast=True`` skips the readability/jusText fallbacks: on our pages it doubles the
    speed at the same F1. ``favor_precision`` drops more boilerplate (share bars,
    related-story lists) at almost no recall cost.
    """
    import trafilatura

    return trafilatura.extract(html, include_comments=False, include_tables=True, fast=True,
                               favor_precision=favor_precision, deduplicate=False) or ""


def extract_text_info(html: str, extractor: str = DEFAULT_EXTRACTOR, fallback: bool = True) -> tuple[str, bool]:
    """``(text, fell_back)``: the main content of a page, or its full visible text when the main
    content is empty or shorter than ``FALLBACK_RATIO`` of it (``fell_back`` is then True)."""
    main = _main_text(html, extractor)
    if not fallback or (main.strip() and len(main) >= FALLBACK_RATIO * len(html)):
        return main, False  # the visible text is never longer than the page: no need to render it
    if main.strip() and len(main) >= BOUND_MARGIN * FALLBACK_RATIO * len(_resiliparse_full_text(html)):
        return main, False
    from filters.edgar import html_to_text

    try:
        full = html_to_text(html)
    except Exception:  # the fallback must never cost a page its main content
        return main, False
    if len(full.strip()) > len(main.strip()) and (not main.strip() or len(main) < FALLBACK_RATIO * len(full)):
        return full, True
    return main, False


def _resiliparse_full_text(html: str) -> str:
    """All the text of a page with Resiliparse ("" when it cannot parse it: then the exact check runs)."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    try:
        return extract_plain_text(HTMLTree.parse(html), main_content=False, alt_texts=False, links=False,
                                  list_bullets=False, noscript=False, form_fields=False)
    except Exception:
        return ""


def extract_text(html: str, extractor: str = DEFAULT_EXTRACTOR, fallback: bool = True) -> str:
    """Text of an HTML page with the named extractor, with the full-text fallback of
    :func:`extract_text_info` ("" when the page shows no text)."""
    return extract_text_info(html, extractor, fallback)[0]


def _main_text(html: str, extractor: str) -> str:
    """Main-content text of an HTML page with the named extractor ("" when nothing is found)."""
    if extractor == "trafilatura":
        # Precision mode finds nothing on some short, well-formed pages (e.g. 63 of 284 Debian
        # handbook sections in our WARC sample): fall back to recall mode only then.
        return extract_trafilatura(html, favor_precision=True) or extract_trafilatura(html, favor_precision=False)
    if extractor == "trafilatura-recall":
        return extract_trafilatura(html, favor_precision=False)
    if extractor == "resiliparse":
        return extract_resiliparse(html)
    raise ValueError(f"unknown HTML extractor {extractor!r}; choose one of {EXTRACTORS}")
