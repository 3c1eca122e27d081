"""EDGAR filings -> text (filters/edgar.py): tables as rows, hidden iXBRL and page furniture out,
full-submission files split into documents, meta, parts. Snippets are real SEC filing HTML (Apple
Inc. Form 10-Q for the quarter ended 2024-06-29 and Form 8-K of 2019-11-15, public EDGAR records),
shortened."""

from __future__ import annotations

from pathlib import Path

import pytest

from filters.edgar import (
    dei_meta,
    document_text,
    filing_meta,
    html_to_text,
    iter_submission,
    join_cells,
    looks_like_filing,
    looks_like_submission,
    non_text_kind,
    split_parts,
)
from filters.html import extract_text_info

ROOT = Path(__file__).resolve().parents[1]
REALWORLD = ROOT.parent / "shared" / "realworld" / "edgar_html"

IX_HEADER = """<div style="display:none"><ix:header><ix:hidden>
<ix:nonNumeric contextRef="c-1" name="dei:DocumentType" id="f-1">10-Q</ix:nonNumeric>
<ix:nonNumeric contextRef="c-1" name="dei:EntityCentralIndexKey" id="f-52">0000320193</ix:nonNumeric>
<ix:nonNumeric contextRef="c-75" name="us-gaap:RevenueRemainingPerformanceObligationExpectedTimingOfSatisfactionPeriod1"
 id="f-399">P1Y</ix:nonNumeric></ix:hidden></ix:header></div>"""

BALANCE_ROWS = """<table>
<tr><td><span>Cash and cash equivalents</span></td><td><span>$</span></td><td><span>25,565</span></td><td></td>
<td><span>$</span></td><td><span>29,965</span></td></tr>
<tr><td><span>Accumulated deficit</span></td><td></td><td><span>(4,726</span></td><td><span>)</span></td>
<td></td><td><span>(214</span></td><td><span>)</span></td></tr>
<tr><td>Gross margin percentage</td><td>46.3</td><td>%</td><td>44.5</td><td>%</td></tr>
</table>"""


def page(n: int, body: str) -> str:
    footer = (f'<div style="text-align:center"><table><tr><td>Apple Inc. | Q3 2024 Form 10-Q | {n}</td></tr>'
              f'</table></div><hr style="page-break-after:always"/>')
    return f"<div><p>{body}</p></div>{footer}"


FILING = ("<?xml version='1.0' encoding='ASCII'?>\n"
          '<html xmlns:ix="http://www.xbrl.org/2013/inlineXBRL" xmlns="http://www.w3.org/1999/xhtml"><head>'
          "<title>aapl-20240629</title><script>var x = 'do not keep';</script></head><body>" + IX_HEADER
          + '<div style="text-align:center"><span>UNITED STATES</span></div><div><span>SECURITIES AND EXCHANGE '
          "COMMISSION</span></div><div><span>Washington, D.C. 20549</span></div><div><span>FORM "
          '<ix:nonNumeric name="dei:DocumentType" contextRef="c-1">10-Q</ix:nonNumeric></span></div>'
          '<div><span>For the quarterly period ended <ix:nonNumeric name="dei:DocumentPeriodEndDate" '
          'contextRef="c-1">June 29, 2024</ix:nonNumeric></span></div>'
          '<div><ix:nonNumeric name="dei:EntityRegistrantName" contextRef="c-1">Apple Inc.</ix:nonNumeric></div>'
          + page(1, "The Company designs, manufactures and markets smartphones, personal computers, tablets.")
          + page(2, "CONDENSED CONSOLIDATED BALANCE SHEETS (Unaudited)" + "</p>" + BALANCE_ROWS + "<p>")
          + page(3, "Net sales disaggregated by significant products and services were as follows.")
          + page(4, "Item 4. Controls and Procedures. Based on an evaluation under the supervision of management.")
          + "</body></html>")


def test_table_rows_are_lines_with_numbers_intact():
    text = html_to_text(FILING)
    lines = text.split("\n")
    assert "Cash and cash equivalents | $ 25,565 | $ 29,965" in lines
    assert "Accumulated deficit | (4,726) | (214)" in lines
    assert "Gross margin percentage | 46.3% | 44.5%" in lines


def test_hidden_ixbrl_scripts_and_page_furniture_are_dropped():
    text = html_to_text(FILING)
    assert "P1Y" not in text and "do not keep" not in text and "aapl-20240629" not in text
    assert text.count("Q3 2024 Form 10-Q") == 1  # the footer repeated on every page: kept once, where it first is
    assert "FORM 10-Q" in text and "Item 4. Controls and Procedures." in text
    kept = html_to_text(FILING, page_furniture=True)
    assert kept.count("Q3 2024 Form 10-Q") == 4


def test_page_furniture_is_only_taken_from_page_edges():
    pages = "".join(f'<p>Heading repeated</p><p>Body {k} text.</p><p>Mid</p><p>Heading repeated</p>'
                    f'<p>Tail {k}.</p><p>{k}</p><hr style="page-break-after:always">' for k in range(1, 5))
    text = html_to_text(f"<html><body>{pages}</body></html>").split("\n")
    assert "1" not in text and "4" not in text  # page numbers at the bottom
    # the top copy of each page is a running header: kept on page 1 only; the inner copies stay
    assert text.count("Heading repeated") == 5
    assert html_to_text("<html><body><p>Total</p><p>12</p></body></html>") == "Total\n12"  # no page breaks


def test_join_cells():
    assert join_cells(["Net income", "$", "21,448", "", "$", "19,881"]) == "Net income | $ 21,448 | $ 19,881"
    assert join_cells(["Change", "(5.2", ")%", ""]) == "Change | (5.2)%"
    assert join_cells(["", "\u200b"[:0]]) == ""


def test_meta_from_the_document():
    assert dei_meta(FILING)["form_type"] == "10-Q"
    meta = filing_meta(FILING, html_to_text(FILING), "0000320193-24-000081-index.htm")
    assert meta == {"form_type": "10-Q", "cik": "0000320193", "period": "2024-06-29", "company": "Apple Inc.",
                    "accession_number": "0000320193-24-000081"}
    assert filing_meta("<html><body>x</body></html>", "SCHEDULE 13G\nUnder the Securities Exchange Act")[
        "form_type"] == "SC 13G"


def test_filing_detection_is_not_fooled_by_news_about_the_sec():
    assert looks_like_filing(FILING)
    news = ("<html><head><title>SEC fines bank</title></head><body><article><p>The Securities and Exchange "
            "Commission said on Tuesday it fined the bank.</p></article></body></html>")
    assert not looks_like_filing(news)
    assert looks_like_submission("<SEC-DOCUMENT>0001193125-19-292676.txt : 20191115\n")
    assert not looks_like_submission("The <DOCUMENT> tag starts each document.")


SUBMISSION = """<SEC-DOCUMENT>0001193125-19-292676.txt : 20191115
<SEC-HEADER>0001193125-19-292676.hdr.sgml : 20191115
ACCESSION NUMBER:\t\t0001193125-19-292676
CONFORMED SUBMISSION TYPE:\t8-K
CONFORMED PERIOD OF REPORT:\t20191107
FILED AS OF DATE:\t\t20191115
FILER:
\tCOMPANY DATA:\t
\t\tCOMPANY CONFORMED NAME:\t\t\tApple Inc.
\t\tCENTRAL INDEX KEY:\t\t\t0000320193
</SEC-HEADER>
<DOCUMENT>
<TYPE>8-K
<SEQUENCE>1
<FILENAME>d828969d8k.htm
<DESCRIPTION>8-K
<TEXT>
<XBRL>
<?xml version="1.0" encoding="utf-8" ?>
<html xmlns:ix="http://www.xbrl.org/2013/inlineXBRL"><head><title>8-K</title></head><body>
<p>UNITED STATES</p><p>SECURITIES AND EXCHANGE COMMISSION</p><p>Washington, D.C. 20549</p><p>FORM 8-K</p>
<table><tr><td>Item 8.01</td><td>Other Events.</td></tr></table>
<p>On November&#160;15, 2019, Apple Inc. consummated the issuance and sale of &#8364;1,000,000,000 aggregate
principal amount of its 0.000% Notes due 2025.</p>
</body></html>
</XBRL>
</TEXT>
</DOCUMENT>
<DOCUMENT>
<TYPE>EX-5.1
<SEQUENCE>4
<FILENAME>d828969dex51.htm
<DESCRIPTION>EX-5.1
<TEXT>
<HTML><BODY><P>Exhibit 5.1</P><P>We have acted as counsel to Apple Inc. in connection with the Notes.</P></BODY></HTML>
</TEXT>
</DOCUMENT>
<DOCUMENT>
<TYPE>EX-101.SCH
<SEQUENCE>5
<FILENAME>aapl-20191107.xsd
<TEXT>
<XBRL>
<?xml version="1.0" encoding="utf-8"?><xsd:schema/>
</XBRL>
</TEXT>
</DOCUMENT>
<DOCUMENT>
<TYPE>GRAPHIC
<SEQUENCE>9
<FILENAME>g828969g1112231605750.jpg
<TEXT>
begin 644 g828969g1112231605750.jpg
M_]C_X  02D9)1@ ! 0$ 8 !@  #_VP!#  @&!@<&!0@'!P<)"0@*#!0-# L+
end
</TEXT>
</DOCUMENT>
<DOCUMENT>
<TYPE>ZIP
<SEQUENCE>14
<FILENAME>0001193125-19-292676-xbrl.zip
<TEXT>
begin 644 0001193125-19-292676-xbrl.zip
M4$L#!!0    (  ]N;T\
end
</TEXT>
</DOCUMENT>
<DOCUMENT>
<TYPE>XML
<SEQUENCE>19
<FILENAME>R1.htm
<TEXT>
<html><body><table><tr><td>Cover</td></tr></table></body></html>
</TEXT>
</DOCUMENT>
</SEC-DOCUMENT>
"""


def test_full_submission_is_split_into_documents_and_non_text_is_rejected():
    docs = list(iter_submission(SUBMISSION.splitlines(keepends=True)))
    assert [d.meta["sequence"] for d in docs] == ["1", "4", "5", "9", "14", "19"]
    assert [d.reason for d in docs] == [None, None, "edgar_not_text:xbrl", "edgar_not_text:graphic",
                                        "edgar_not_text:archive", "edgar_not_text:xbrl_viewer"]
    first = docs[0]
    assert {k: first.meta[k] for k in ("accession_number", "form_type", "period", "filing_date", "company", "cik",
                                       "type")} == {
        "accession_number": "0001193125-19-292676", "form_type": "8-K", "period": "2019-11-07",
        "filing_date": "2019-11-15", "company": "Apple Inc.", "cik": "0000320193", "type": "8-K"}
    text, was_html = document_text(first.text)
    assert was_html and "Item 8.01 | Other Events." in text and "€1,000,000,000" in text
    assert document_text(docs[1].text)[0] == ("Exhibit 5.1\nWe have acted as counsel to Apple Inc. in connection "
                                              "with the Notes.")
    assert docs[3].text is None and docs[3].head.startswith("begin 644")  # kept for the rejection record only


def test_non_text_kinds():
    assert non_text_kind("EX-101.INS", "aapl-20191107.xml") == "xbrl"
    assert non_text_kind("EX-99.1", "d1dex991.htm") is None
    assert non_text_kind("EX-99.1", "presentation.pdf") == "pdf"
    assert non_text_kind("EX-99", "x.bin", "begin 644 x.bin") == "binary"


def test_over_limit_text_is_split_at_items_and_nothing_is_lost():
    body = "\n".join(f"Item {k}. Section {k}\n" + "\n".join(f"Line {k}.{j} revenue was $ {j},000." for j in range(40))
                     for k in range(1, 6))
    parts = split_parts(body, 3000)
    assert len(parts) > 1 and all(len(p.encode()) <= 3000 for p in parts)
    assert "\n".join(parts) == body
    assert sum(p.startswith("Item ") for p in parts) >= len(parts) - 1  # cuts fall on Item headings when they can
    assert split_parts("short", 100) == ["short"]
    long_line = "word " * 500
    assert "".join(split_parts(long_line, 600)) == long_line


def test_web_fallback_when_main_content_is_missing_or_tiny(monkeypatch):
    import filters.html

    rows = "".join(f"<tr><td>Segment {k}</td><td>$</td><td>{k},104</td></tr>" for k in range(30))
    page_html = ("<html><body><div class='nav'><a href='/'>Home</a></div><p>Investor relations.</p><table>"
                 + rows + "</table></body></html>")
    for main in ("", "Investor relations."):  # nothing, or one stray line of a long page
        monkeypatch.setattr(filters.html, "_main_text", lambda html, extractor, main=main: main)
        text, fell_back = extract_text_info(page_html)
        assert fell_back and "Segment 7 | $ 7,104" in text
    monkeypatch.undo()
    article = ("<html><body><article><h1>Shares rise</h1>" + "".join(
        f"<p>Paragraph {k}: the company's shares rose sharply after it reported higher quarterly profit "
        f"and raised its forecast for the year.</p>" for k in range(8)) + "</article></body></html>")
    text, fell_back = extract_text_info(article)
    assert not fell_back and "Paragraph 3" in text


@pytest.mark.skipif(not REALWORLD.is_dir(), reason="needs ../shared/realworld")
def test_small_real_filings_keep_their_visible_text():
    from benchmarks.bench_edgar import score, visible_text

    files = [p for p in sorted(REALWORLD.glob("*.htm*")) if p.stat().st_size < 200_000]
    assert files
    for path in files:
        html = path.read_text(encoding="utf-8", errors="replace")
        s = score(html_to_text(html, page_furniture=True), visible_text(html))
        assert s["text_recall"] >= 0.95 and s["number_recall"] >= 0.95, (path.name, s)


def test_hostile_input_does_not_crash():
    deep = "<html><body><p>start</p>" + "<div>" * 1000 + "deep text" + "</div>" * 1000 + "<p>end</p></body></html>"
    assert html_to_text(deep) == "start\ndeep text\nend"
    assert html_to_text("") == "" and html_to_text("   ") == ""
    cut = SUBMISSION[: SUBMISSION.index("<TYPE>EX-5.1") + 200]  # a file cut inside its second document
    docs = list(iter_submission(cut.splitlines(keepends=True)))
    assert len(docs) == 2 and docs[1].meta["type"] == "EX-5.1" and docs[1].text is not None


def test_submission_file_is_read_document_by_document_even_gzipped(tmp_path):
    import gzip

    from pipelines.io import Rejected, iter_file_records

    (tmp_path / "sub.txt.gz").write_bytes(gzip.compress(SUBMISSION.encode()))
    records = list(iter_file_records(str(tmp_path / "sub.txt.gz")))
    assert len(records) == 6
    kept = [r for _, r in records if not isinstance(r, Rejected)]
    assert [r["id"] for r in kept] == ["0001193125-19-292676:1", "0001193125-19-292676:4"]
    assert kept[0]["meta"]["format"] == "edgar" and kept[0]["meta"]["filename"] == "d828969d8k.htm"
    assert [r.reason for _, r in records if isinstance(r, Rejected)][0] == "edgar_not_text:xbrl"


def test_an_exhibit_filed_on_its_own_is_recognized_as_a_filing():
    """A press release or legal opinion saved from a filing as its own .htm has no cover page: its first
    element, "Exhibit 5.1", says what it is (the demo's real 8-K submission, data/edgar/)."""
    path = Path(__file__).resolve().parents[1] / "data" / "edgar" / "apple_8k_20191115.txt"
    with open(path, encoding="utf-8") as f:
        exhibits = [d for d in iter_submission(f) if d.text and d.meta.get("type", "").startswith("EX-")]
    assert [d.meta["type"] for d in exhibits] == ["EX-1.1", "EX-4.1", "EX-5.1"]
    assert all(looks_like_filing(d.text) for d in exhibits)
    assert not looks_like_filing("<html><body><p>The museum's new exhibit 12 opens today.</p></body></html>")
    opinion = exhibits[-1].text
    assert filing_meta(opinion, html_to_text(opinion))["type"] == "EX-5.1"
