"""SEC EDGAR filings -> text: HTML/iXBRL documents, full-submission ``.txt`` files, meta, parts.

Why our own extractor: filings are not articles. A main-content extractor keeps 0-25% of a
prospectus, an 8-K or an SC 13G (issue 20), and generic full-text extractors flatten tables into
one cell per line, which separates each number from its label. ``benchmarks/bench_edgar.py``
measures every candidate (text and number recall against a visible-text reference, MB/s;
``benchmarks/RESULTS.md``): this one renders what a reader of the filing sees, with

- block elements (``p``, ``div``, headings, list items...) as lines, ``<br>`` as a line break;
- each table row as one line, its non-empty cells joined by `` | `` (the form of the SEC
  excerpts in ``../shared/realworld``: a row stays a unit a model can read, label next to its
  numbers). Cells that are only a currency sign join the next cell (``$ 1,234``), cells that
  are only a closing ``)`` or ``%`` join the previous one (``(5.2)``, ``12.5%``): filings typeset
  those in cells of their own;
- nothing that is not displayed: ``script``, ``style``, ``head``, the iXBRL header
  (``ix:header``), anything under ``display:none`` or ``hidden``;
- no page furniture: where the document has page breaks (``page-break-before/after``), a line at
  the top or bottom of a page that is a page number, or that repeats (digits ignored) at the edge
  of at least half of the pages (and 3), is dropped.

Full-submission ``.txt`` files (``<SEC-DOCUMENT>`` ... ``<DOCUMENT>`` ...): :func:`iter_submission`
streams them one ``<DOCUMENT>`` at a time (memory: one document), with the ``<SEC-HEADER>``
fields as meta; graphics, PDFs, archives, spreadsheets and XBRL/XML documents are returned
with a rejection reason instead of their body.

Pure Python over lxml; no Beam.
"""

from __future__ import annotations

import html as html_lib
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------------- detection

_SUBMISSION_START = re.compile(r"^\s*(?:-----BEGIN PRIVACY-ENHANCED MESSAGE-----|<SEC-DOCUMENT>|<SEC-HEADER>|"
                               r"<IMS-HEADER>|<DOCUMENT>\s*<TYPE>)", re.IGNORECASE)
# Markers of an SEC filing in the first 64 KB of an HTML page (see looks_like_filing).
_GAP = r"(?:\s|&nbsp;|&#160;|&#xa0;|<[^>]*>)*"
# (literal that must be in the page, regex that then confirms it): the literal check is what most
# pages cost (~0.2 ms per news page instead of ~3 ms for one combined case-insensitive regex).
_FILING_MARKERS = (
    ('xmlns:ix="http://www.xbrl.org/2013/inlinexbrl"', None),
    ('name="dei:', None),
    ("defref_", re.compile(r"defref_(?:us-gaap|dei|ifrs)_", re.IGNORECASE)),
    ("20549", re.compile(rf"Washington,{_GAP}D\.{_GAP}C\.{_GAP}20549", re.IGNORECASE)),
    ("424", re.compile(rf"Filed{_GAP}pursuant{_GAP}to{_GAP}Rule{_GAP}424", re.IGNORECASE)),
    ("file", re.compile(rf"Commission{_GAP}File{_GAP}(?:Number|No\.)", re.IGNORECASE)),
    ("333-", re.compile(rf"Registration{_GAP}No\.{_GAP}33[3-9]-\d", re.IGNORECASE)),
    ("<title>", re.compile(r"<title>\s*(?:FORM\s+)?(?:10-K|10-Q|8-K|6-K|20-F|40-F|424B\d|DEF\s*14A|SC\s*13[DG]|"
                           r"EX-\d{1,3})\b", re.IGNORECASE)),
    # an exhibit filed on its own (a press release, a charter, bylaws): its first element says so,
    # "Exhibit 99.1" / "EX-99.1" alone between tags (Regulation S-K Item 601 numbers exhibits so)
    ("ex", re.compile(rf">{_GAP}(?:Exhibit|EXHIBIT|EX-){_GAP}\d{{1,3}}(?:\.\d{{1,3}})?[A-Za-z]?{_GAP}<")),
)
FILING_SNIFF_CHARS = 64_000  # the cover page of a filing lies within its first 64 KB of HTML (iXBRL headers included)


def looks_like_submission(head: str) -> bool:
    """True when ``head`` (the first KB of a file) starts an EDGAR full-submission text file."""
    return bool(_SUBMISSION_START.match(head))


def looks_like_filing(html: str) -> bool:
    """True when an HTML page is an SEC filing (or exhibit): inline XBRL, dei facts, an XBRL viewer
    page, the SEC's address on every form's cover ("Washington, D.C. 20549"), a prospectus's
    "Filed pursuant to Rule 424", a "Commission File Number" or Securities Act "Registration No.
    333-", a form or exhibit type as the page title, or an element that is only an exhibit number
    ("Exhibit 99.1"), within its first 64 KB. Not the words "Securities and
    Exchange Commission": news about the SEC has them."""
    head = html[:FILING_SNIFF_CHARS]
    lower = head.lower()
    return any(literal in lower and (regex is None or regex.search(head)) for literal, regex in _FILING_MARKERS)


# ---------------------------------------------------------------------------- HTML -> text

_SKIP_TAGS = frozenset({"script", "style", "head", "title", "noscript", "template", "ix:header", "header:ix",
                        "select", "option", "button", "iframe", "object", "svg", "math", "map"})
_BLOCK_TAGS = frozenset({"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dt", "dd",
                         "section", "article", "header", "footer", "nav", "main", "aside", "blockquote", "pre",
                         "center", "form", "fieldset", "address", "figure", "figcaption", "caption", "hr",
                         "body", "html", "table", "tr", "td", "th", "thead", "tbody", "tfoot", "page", "document",
                         "text"})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_PAGE_BREAK_STYLE = re.compile(r"(?:page-)?break-(?:before|after)\s*:\s*(?:always|page)", re.IGNORECASE)
_WS = re.compile(r"[ \t\n\r\f\v\u00a0\u200b\u2002-\u200a\u202f\u205f\u3000\ufeff]+")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
MAX_DEPTH = 200  # elements nested deeper are rendered flat (hostile pages; filings nest < 30 deep)
PAGE = "\x0c"  # a page break between lines, removed after page furniture is
# Cells typeset apart from their number: a currency sign before it, a closing parenthesis or a
# percent sign after it.
_CURRENCY_CELL = re.compile(r"^(?:\(?\s*(?:US|C|A|HK|NT|R)?\$|€|£|¥|₹|CHF|\(|\$\s*\()$")
_CLOSING_CELL = re.compile(r"^(?:\)|%|\)%|%\))$")


def _tag(el: Any) -> str:
    tag = el.tag
    return tag.lower() if isinstance(tag, str) else ""


def _hidden(el: Any) -> bool:
    style = el.get("style")
    return (style is not None and _HIDDEN_STYLE.search(style) is not None) or el.get("hidden") is not None


def _page_break(el: Any) -> bool:
    style = el.get("style")
    return style is not None and _PAGE_BREAK_STYLE.search(style) is not None


class _Writer:
    """Accumulates inline text into lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.parts: list[str] = []

    def text(self, s: str | None) -> None:
        if s:
            self.parts.append(s)

    def newline(self) -> None:
        if self.parts:
            line = _WS.sub(" ", "".join(self.parts)).strip()
            self.parts = []
            if line:
                self.lines.append(line)

    def line(self, s: str) -> None:
        self.newline()
        if s:
            self.lines.append(s)

    def page(self) -> None:
        self.newline()
        if self.lines and self.lines[-1] != PAGE:
            self.lines.append(PAGE)


def _cell_text(cell: Any, depth: int = 0) -> str:
    out: list[str] = []
    _collect(cell, out, depth)
    return _WS.sub(" ", "".join(out)).strip()


def _collect(el: Any, out: list[str], depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        out.append(" ".join(el.itertext()))
        return
    if el.text:
        out.append(el.text)
    for child in el:
        tag = _tag(child)
        if tag and tag not in _SKIP_TAGS and not _hidden(child):
            if tag in _BLOCK_TAGS or tag == "br":
                out.append(" ")
            _collect(child, out, depth + 1)
            if tag in _BLOCK_TAGS:
                out.append(" ")
        if child.tail:
            out.append(child.tail)


def _rows(table: Any) -> Iterator[Any]:
    """Rows of a table, and (broken markup: a cell or a paragraph outside any row) stray elements."""
    for child in table:
        tag = _tag(child)
        if tag in ("thead", "tbody", "tfoot"):
            yield from _rows(child)
        elif tag and tag not in _SKIP_TAGS and tag not in ("colgroup", "col"):
            yield child


def join_cells(cells: list[str]) -> str:
    """One table row as a line: non-empty cells joined by `` | ``, currency signs glued to the
    number after them and closing ``)``/``%`` to the number before them."""
    merged: list[str] = []
    pending = ""
    for cell in cells:
        if not cell:
            continue
        if _CURRENCY_CELL.match(cell):
            pending = f"{pending} {cell}".strip() if pending else cell
            continue
        if pending:
            cell = f"{pending} {cell}" if not pending.endswith("(") else pending + cell
            pending = ""
        if merged and _CLOSING_CELL.match(cell):
            merged[-1] += cell
            continue
        merged.append(cell)
    if pending:
        merged.append(pending)
    return " | ".join(merged)


def _render(el: Any, w: _Writer, depth: int = 0) -> None:
    tag = _tag(el)
    if depth > MAX_DEPTH:  # pathological nesting: the subtree's text as one run, no Python recursion
        w.text(" ".join(el.itertext()))
        return
    if tag == "table":
        _render_table(el, w, depth)
        return
    block = tag in _BLOCK_TAGS
    if block:
        w.newline()
    if tag == "hr" and _page_break(el):
        w.page()
    elif block and _page_break(el) and "before" in (el.get("style") or "").lower():
        w.page()
    w.text(el.text)
    for child in el:
        ctag = _tag(child)
        if ctag and ctag not in _SKIP_TAGS and not _hidden(child):
            if ctag == "br":
                w.newline()
            else:
                _render(child, w, depth + 1)
        w.text(child.tail)
    if block:
        w.newline()
        if tag != "hr" and _page_break(el) and "after" in (el.get("style") or "").lower():
            w.page()


def _render_table(table: Any, w: _Writer, depth: int = 0) -> None:
    w.newline()
    for row in _rows(table):
        if _hidden(row):
            continue
        if _tag(row) != "tr":
            _render(row, w, depth + 1)
            w.newline()
            continue
        cells = [c for c in row if _tag(c) in ("td", "th") and not _hidden(c)]
        if any(c.find(".//table") is not None for c in cells):
            # a layout table holding tables: render its cells as blocks, not as one row
            for c in cells:
                _render(c, w, depth + 2)
                w.newline()
            continue
        w.line(join_cells([_cell_text(c, depth + 2) for c in cells]))
    w.newline()


_PAGE_NUMBER = re.compile(r"^(?:page\s+)?[-–—(\[]?\s*(?:[A-Z]-?\s?)?(?:\d{1,3}|[ivxlcdm]{1,7})\s*[-–—)\]]?"
                          r"(?:\s+of\s+\d{1,4})?$", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
EDGE_LINES = 2           # lines at the top and at the bottom of a page that may be page furniture
MIN_REPEAT_PAGES = 3     # a header/footer repeats on at least this many pages ...
MIN_REPEAT_SHARE = 0.5   # ... and on at least this share of the pages
MAX_FURNITURE_CHARS = 100  # a running header/footer is one short line (company, form, period, page)


def remove_page_furniture(lines: list[str]) -> list[str]:
    """Drop page numbers and the repeats of running headers/footers; ``lines`` hold :data:`PAGE` markers.

    A running header is kept once, where it first appears ("CUSIP No. 53814L108 | SCHEDULE 13G" says
    what the document is); its copies on the other pages are layout, not text.

    Only the ``EDGE_LINES`` first and last lines of each page are candidates, and only lines of
    at most ``MAX_FURNITURE_CHARS`` as repeats, so a number or a repeated heading inside the text
    is never touched; without page breaks nothing is dropped.
    """
    pages: list[list[str]] = [[]]
    for line in lines:
        if line == PAGE:
            if pages[-1]:
                pages.append([])
        else:
            pages[-1].append(line)
    if not pages[-1]:
        pages.pop()
    if len(pages) < 2:
        return [line for line in lines if line != PAGE]

    def edges(page: list[str]) -> list[int]:
        k = min(EDGE_LINES, len(page))
        return sorted(set(range(k)) | set(range(len(page) - k, len(page))))

    seen: Counter = Counter()
    for page in pages:
        seen.update({_DIGITS.sub("#", page[i]).lower() for i in edges(page)})
    need = max(MIN_REPEAT_PAGES, MIN_REPEAT_SHARE * len(pages))
    out: list[str] = []
    kept: set[str] = set()  # running headers already kept once
    for page in pages:
        drop = set()
        for i in edges(page):
            if _PAGE_NUMBER.match(page[i]):
                drop.add(i)
                continue
            key = _DIGITS.sub("#", page[i]).lower()
            if len(page[i]) <= MAX_FURNITURE_CHARS and seen[key] >= need:
                if key in kept:
                    drop.add(i)
                kept.add(key)
        out.extend(line for i, line in enumerate(page) if i not in drop)
    return out


def _parse(html: str) -> Any:
    import lxml.html

    html = _XML_DECL.sub("", html, count=1)
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, collect_ids=False, huge_tree=True)
    return lxml.html.document_fromstring(html, parser=parser) if html.strip() else None


def html_to_text(html: str, page_furniture: bool = False) -> str:
    """The visible text of an HTML page, tables one row per line (see the module docstring).

    ``page_furniture=True`` keeps page numbers and running headers/footers.
    """
    root = _parse(html)
    if root is None:
        return ""
    w = _Writer()
    _render(root, w)
    w.newline()
    lines = w.lines if page_furniture else remove_page_furniture(w.lines)
    return "\n".join(line for line in lines if line != PAGE)


# ---------------------------------------------------------------------------- meta

_DEI_FIELDS = {"dei:documenttype": "form_type", "dei:entityregistrantname": "company",
               "dei:entitycentralindexkey": "cik", "dei:documentperiodenddate": "period"}
_RULE_424 = re.compile(r"Rule\s+424\(b\)\s*\((\d)\)", re.IGNORECASE)
_FORM_IN_TEXT = re.compile(r"\b(?:FORM|SCHEDULE)\s+(10-K|10-Q|8-K|6-K|20-F|40-F|S-1|S-3|S-4|F-1|F-3|11-K|"
                           r"13[DG]|DEF\s?14A|N-CSR|424B\d)\b(?:/A)?")
_ACCESSION = re.compile(r"\b(\d{10}-\d{2}-\d{6})\b")


_IX_OPEN = re.compile(r"<ix:nonnumeric\b[^>]*\bname=\"(dei:\w+)\"[^>]*>", re.IGNORECASE)
_IX_TAG = re.compile(r"<(/?)ix:nonnumeric\b[^>]*>", re.IGNORECASE)


def dei_meta(html: str) -> dict[str, str]:
    """Cover-page facts an iXBRL document tags (``dei:DocumentType``...), as meta fields; a fact's
    text may hold other tagged facts (nested ``ix:nonNumeric``), which are part of it."""
    meta: dict[str, str] = {}
    for m in _IX_OPEN.finditer(html):
        key = _DEI_FIELDS.get(m.group(1).lower())
        if not key or key in meta:
            continue
        depth, pos, end = 1, m.end(), len(html)
        for t in _IX_TAG.finditer(html, m.end()):
            depth += -1 if t.group(1) else 1
            if depth == 0:
                end, pos = t.start(), t.end()
                break
        value = _WS.sub(" ", html_lib.unescape(re.sub(r"<[^>]+>", "", html[m.end():end]))).strip()
        if value and pos:
            meta[key] = value[:200]
    return meta


def iso_date(value: str) -> str:
    """``20240629``, ``June 29, 2024`` or ``Jun. 29, 2024`` -> ``2024-06-29``; other text unchanged."""
    from datetime import datetime

    v = _WS.sub(" ", value.replace(".", "")).strip()
    for fmt in ("%Y%m%d", "%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(v, fmt).date().isoformat()
        except ValueError:
            pass
    return value


_EXHIBIT_IN_TEXT = re.compile(r"\s*(?:Exhibit|EXHIBIT|EX-)\s*(\d{1,3}(?:\.\d{1,3})?[A-Za-z]?)\s*\n")


def filing_meta(html: str, text: str = "", name: str = "") -> dict[str, str]:
    """Form type, company, CIK, period from the document itself (iXBRL ``dei`` facts; else the form
    named on the cover page), the exhibit type of an exhibit whose first line numbers it ("Exhibit
    99.1" -> ``type: EX-99.1``), and the accession number when the file name carries one."""
    meta = dei_meta(html)
    if "form_type" not in meta:
        m = _FORM_IN_TEXT.search(text[:5000])
        if m:
            form = re.sub(r"\s+", " ", m.group(1))
            meta["form_type"] = f"SC {form}" if form.startswith("13") else form
        elif _RULE_424.search(text[:5000]):
            meta["form_type"] = "424B" + _RULE_424.search(text[:5000]).group(1)
    m = _EXHIBIT_IN_TEXT.match(text[:200])
    if m:  # an exhibit saved on its own: its first line numbers it (Regulation S-K Item 601)
        meta["type"] = f"EX-{m.group(1)}"
    m = _ACCESSION.search(name)
    if m:
        meta["accession_number"] = m.group(1)
    if "period" in meta:
        meta["period"] = iso_date(meta["period"])
    return meta


# ---------------------------------------------------------------------------- full submissions

# SGML header line -> meta field (EDGAR Public Dissemination Service header, "EDGAR Filer Manual" vol. II)
_HEADER_FIELDS = {"ACCESSION NUMBER": "accession_number", "CONFORMED SUBMISSION TYPE": "form_type",
                  "CONFORMED PERIOD OF REPORT": "period", "FILED AS OF DATE": "filing_date",
                  "COMPANY CONFORMED NAME": "company", "CENTRAL INDEX KEY": "cik"}
_HEADER_LINE = re.compile(r"^\s*([A-Z][A-Z \-]+):\s*(.*?)\s*$")
_DOC_TAG = re.compile(r"^<(TYPE|SEQUENCE|FILENAME|DESCRIPTION)>\s*(.*?)\s*$", re.IGNORECASE)
# What is not text: by <TYPE>, then by file extension (EDGAR Filer Manual: GRAPHIC, ZIP, PDF,
# EX-101.* XBRL instance and linkbases, XML, JSON, EXCEL).
_NON_TEXT_TYPES = (("GRAPHIC", "graphic"), ("ZIP", "archive"), ("PDF", "pdf"), ("EX-101", "xbrl"),
                   ("EX-100", "xbrl"), ("XML", "xml"), ("JSON", "json"), ("EXCEL", "spreadsheet"),
                   ("XBRL", "xbrl"))
_NON_TEXT_EXT = {".jpg": "graphic", ".jpeg": "graphic", ".gif": "graphic", ".png": "graphic", ".bmp": "graphic",
                 ".tif": "graphic", ".tiff": "graphic", ".svg": "graphic", ".pdf": "pdf", ".zip": "archive",
                 ".xml": "xml", ".xsd": "xbrl", ".json": "json", ".xls": "spreadsheet", ".xlsx": "spreadsheet",
                 ".js": "script", ".css": "script"}
_UUENCODE = re.compile(r"^begin [0-7]{3} \S")
NOT_TEXT_REASON = "edgar_not_text"  # + ":" + kind


def non_text_kind(doc_type: str, filename: str, first_line: str = "") -> str | None:
    """Why a submission document is not text (``graphic``, ``pdf``, ``archive``, ``xbrl``...), or None."""
    if re.match(r"^R\d+\.html?$", filename, re.IGNORECASE):
        return "xbrl_viewer"  # EDGAR's rendering of the XBRL facts: the primary document's tables again
    t = doc_type.upper()
    for prefix, kind in _NON_TEXT_TYPES:
        if t.startswith(prefix):
            return kind
    name = filename.lower()
    ext = name[name.rfind("."):] if "." in name else ""
    if ext in _NON_TEXT_EXT:
        return _NON_TEXT_EXT[ext]
    if _UUENCODE.match(first_line):
        return "binary"
    return None


@dataclass
class SubmissionDocument:
    """One ``<DOCUMENT>`` of a full submission: its text (None when not text: see ``reason``)."""

    line: int                       # 1-based line of its <DOCUMENT> tag in the file
    meta: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    reason: str | None = None       # ``edgar_not_text:<kind>`` when the document is not text
    head: str = ""                  # its first 1 KB (for a rejection record)


def iter_submission(lines: Iterable[str], keep_head: int = 1024) -> Iterator[SubmissionDocument]:
    """Stream an EDGAR full-submission file: one :class:`SubmissionDocument` per ``<DOCUMENT>``.

    ``meta`` holds the submission header fields (accession number, form type, period, filing
    date, company, CIK of the first filer) and the document's own ``type``, ``sequence``,
    ``filename``, ``description``. Bodies of non-text documents are skipped as they stream by,
    so memory is one text document at a time.
    """
    header: dict[str, str] = {}
    in_header = True
    doc: SubmissionDocument | None = None
    body: list[str] = []
    in_text = False
    kept = 0
    for n, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        upper = line[:12].upper()
        if doc is None:
            if upper.startswith("<DOCUMENT>"):
                in_header = False
                doc = SubmissionDocument(line=n, meta=dict(header))
                body, in_text, kept = [], False, 0
            elif in_header:
                m = _HEADER_LINE.match(line)
                if m and m.group(1).strip() in _HEADER_FIELDS:
                    key = _HEADER_FIELDS[m.group(1).strip()]
                    if key not in header and m.group(2):
                        header[key] = iso_date(m.group(2)) if key in ("period", "filing_date") else m.group(2)
            continue
        if upper.startswith("</DOCUMENT>"):
            if doc.reason is None:
                doc.text = "".join(body)
            yield doc
            doc = None
            continue
        if not in_text:
            m = _DOC_TAG.match(line)
            if m:
                doc.meta[m.group(1).lower()] = m.group(2)
                continue
            if upper.startswith("<TEXT>"):
                in_text = True
                doc.reason = _reason(doc.meta, "")
            continue
        if upper.startswith("</TEXT>"):
            in_text = False
            continue
        if kept < keep_head:
            doc.head += raw[:keep_head - kept]
            kept += len(raw)
            if doc.reason is None and line.strip() and not body and _UUENCODE.match(line):
                doc.reason = _reason(doc.meta, line)
        if doc.reason is None:
            body.append(raw)
    if doc is not None:  # a file cut inside its last document: what was read
        if doc.reason is None:
            doc.text = "".join(body)
        yield doc


def _reason(meta: dict[str, Any], first_line: str) -> str | None:
    kind = non_text_kind(meta.get("type", ""), meta.get("filename", ""), first_line)
    return f"{NOT_TEXT_REASON}:{kind}" if kind else None


_XBRL_WRAPPER = re.compile(r"^\s*<XBRL>|</XBRL>\s*$", re.IGNORECASE)
_SGML_PAGE = re.compile(r"^\s*</?(?:PAGE|S|C|FN|R|F\d*|CAPTION|TABLE)>\s*$", re.IGNORECASE | re.MULTILINE)


def document_text(body: str) -> tuple[str, bool]:
    """Text of one submission document body: ``(text, was_html)``. HTML/iXBRL bodies (wrapped in
    ``<XBRL>`` or not) are rendered by :func:`html_to_text`; plain-text bodies (older filings)
    lose their SGML ``<PAGE>``/``<TABLE>`` markers and keep their layout."""
    stripped = _XBRL_WRAPPER.sub("", body.strip())
    head = stripped[:4096].lower()
    if "<html" in head or "<body" in head or "<div" in head or "<p" in head or "<table" in head:
        return html_to_text(stripped), True
    return _SGML_PAGE.sub("", stripped).strip(), False


# ---------------------------------------------------------------------------- parts

_ITEM_HEADING = re.compile(r"^(?:PART\s+[IVX]+\b|ITEM\s+\d{1,2}[A-C]?\b|Item\s+\d{1,2}[A-C]?\b|"
                           r"SIGNATURES?$|EXHIBIT\s+INDEX$|NOTES? TO (?:THE )?(?:CONSOLIDATED )?FINANCIAL)")


def _utf8_len(s: str) -> int:
    return len(s.encode("utf-8", "surrogatepass"))


def split_parts(text: str, max_bytes: int) -> list[str]:
    """Cut a text over ``max_bytes`` (UTF-8) into parts at section boundaries.

    Sections start at an Item/Part heading line (``Item 7.``, ``PART II``, ``SIGNATURES``...);
    consecutive sections are packed into parts up to ``max_bytes``. A section larger than that
    is cut at line boundaries, and a single line larger than that at spaces (then anywhere),
    so nothing is dropped: the parts joined by newlines are the text.
    """
    if _utf8_len(text) <= max_bytes:
        return [text]
    sections: list[list[str]] = [[]]
    for line in text.split("\n"):
        if _ITEM_HEADING.match(line) and sections[-1]:
            sections.append([])
        sections[-1].append(line)
    pieces: list[tuple[str, bool]] = []  # (unit no larger than max_bytes, a line continues after it), in order
    for section in sections:
        block = "\n".join(section)
        if _utf8_len(block) <= max_bytes:
            pieces.append((block, False))
            continue
        for line in section:
            cut = _cut_line(line, max_bytes)
            pieces.extend((c, k < len(cut) - 1) for k, c in enumerate(cut))
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for piece, continues in pieces:
        n = _utf8_len(piece) + (1 if current else 0)
        if current and size + n > max_bytes:
            parts.append("\n".join(current))
            current, size = [], 0
            n -= 1
        current.append(piece)
        size += n
        if continues:  # the rest of this line starts the next part: no newline is invented inside a line
            parts.append("\n".join(current))
            current, size = [], 0
    if current:
        parts.append("\n".join(current))
    return parts


def _cut_line(line: str, max_bytes: int) -> list[str]:
    """A line cut into pieces of at most ``max_bytes`` UTF-8 bytes, at a space when one lies in
    the second half of the piece, else at a character boundary."""
    out: list[str] = []
    while _utf8_len(line) > max_bytes:
        head = line.encode("utf-8", "surrogatepass")[:max_bytes].decode("utf-8", "ignore")
        space = head.rfind(" ", len(head) // 2)
        cut = space if space > 0 else len(head)
        out.append(line[:cut])
        line = line[cut:]
    out.append(line)
    return out
