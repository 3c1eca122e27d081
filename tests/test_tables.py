"""Table lines and mostly-numeric lines (``filters/tables.py``) on real filing text from ``data/finance``."""

from __future__ import annotations

import gzip
import json
import os
from functools import cache

import pytest

from filters.tables import (
    HEADING,
    NUMERIC,
    PROSE,
    TABLE,
    Layout,
    is_label,
    is_number,
    is_style_line,
    is_tag,
    split_cells,
    table_line_mask,
)

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
ROW = "iPhone (1) | $51,982 | $61,104"  # Apple 10-Q, fiscal 2019 Q1, net sales by category (a public SEC record)


@cache
def tenq(doc_id: str) -> str:
    with gzip.open(os.path.join(DATA, "finance", "sec_10q_aapl.jsonl.gz"), "rt", encoding="utf-8") as f:
        return {r["id"]: r["text"] for r in map(json.loads, f)}[f"sec-aapl-10q-2019q1-{doc_id}"]


@pytest.mark.parametrize("token", ["1,234", "$16,352", "(5.2)", "12.5%", "—", "$", "2019", "(51,929)", "$(750)",
                                   "0.875%", "29,"])
def test_numbers(token):
    assert is_number(token)


@pytest.mark.parametrize("token", ["iPhone", "Q4", "10-Q", "2023-01-01", "us-gaap:Revenues", "(Note"])
def test_not_numbers(token):
    assert not is_number(token)


def test_the_three_row_shapes():
    assert split_cells(ROW) == ["iPhone (1)", "$51,982", "$61,104"]
    assert split_cells("Land and buildings $16,352 $16,216") == ["Land and buildings", "$16,352", "$16,216"]
    assert split_cells("Interest expense (890) (734)") == ["Interest expense", "(890)", "(734)"]
    assert split_cells("Total net sales\t84,310\t88,293") == ["Total net sales", "84,310", "88,293"]
    assert split_cells("Total net sales    84,310    88,293") == ["Total net sales", "84,310", "88,293"]
    assert split_cells("| Cash | 25,565 | 29,965 |") == ["Cash", "25,565", "29,965"]


@pytest.mark.parametrize("line", [
    "The stock traded around 12, down 1/8, this afternoon, after falling to 11-1/2 earlier this week on the news.",
    "Net sales increased 5% to $84.3 billion during the first quarter of 2019.",
    "Gross margin was 38.0% compared to 38.3% a year earlier",
    "The following table shows the detail of other income/(expense), net (in millions):",
    "Reporting by the commodities desk in London 2",
])
def test_prose_is_not_a_row(line):
    assert split_cells(line) is None


def test_labels_tags_and_style_residue():
    assert is_label("Total net sales (4)") and not is_label("2019 €m") and not is_label("$84,310")
    assert not is_label("us-gaap:RevenueFromContractWithCustomer")
    assert is_tag("us-gaap:RevenueFromContractWithCustomer") and is_tag("iso4217:USD") and not is_tag("Revenue:")
    assert is_style_line("blacklining:none;") and is_style_line("display: none;")
    assert not is_style_line("Note 3: Balance Sheet Components") and not is_style_line("Total:")


def test_layout_of_a_real_10q_table():
    text = tenq("DisaggregationOfRevenueTableTextBlock")
    layout = Layout(text)
    kinds = dict(zip(layout.lines, layout.kinds))
    assert kinds["Three Months Ended"] == HEADING
    assert kinds["December 29, 2018 December 30, 2017"] in (TABLE, NUMERIC)
    assert kinds["iPhone (1) $51,982 $61,104"] == TABLE
    assert kinds["Total net sales (4) $84,310 $88,293"] == TABLE
    assert all(kinds[line] == PROSE for line in layout.lines if line.startswith("(") and line.endswith("."))
    assert layout.data_rows >= 6 and layout.unlabelled_rows == 0  # five categories and the total, + the date header
    assert "$51,982" not in layout.labels and "iPhone" in layout.labels  # the words view: labels, no numbers
    assert table_line_mask(text) == [k != PROSE for k in layout.kinds]
    assert len(table_line_mask(text)) == len(text.split("\n"))


def test_number_soup_is_unlabelled():
    """The same real table with its labels taken off: every row is a number nobody named."""
    text = tenq("OtherNoncurrentLiabilitiesTableTextBlock")
    soup = "\n".join(" | ".join(c for c in (split_cells(line) or []) if not is_label(c))
                     for line in text.split("\n") if split_cells(line))
    layout = Layout(soup)
    assert layout.n_table_lines >= 3 and layout.unlabelled_rows == layout.n_table_lines and layout.data_rows == 0
    assert Layout(text).unlabelled_rows == 0


def test_menus_are_prose_and_table_headers_are_headings():
    menu = "Markets | Stocks | Bonds | Currencies\nCompanies | Earnings | Filings\nAbout us | Contact"
    assert Layout(menu).kinds == [PROSE, PROSE, PROSE]
    table = "Fiscal Year | Leases | Leases\n2020 – 2024 | 381 | 697\n2025 – 2029 | 198 | 270"
    assert Layout(table).kinds == [HEADING, TABLE, TABLE]


def test_a_lone_number_is_a_page_number_not_a_row():
    layout = Layout("Item 2. Properties\n14\nThe Company's headquarters are located in Cupertino, California.")
    assert layout.kinds == [PROSE, PROSE, PROSE] and layout.n_table_lines == 0


def test_a_note_title_and_a_wrapped_sentence_are_prose():
    assert Layout("NOTE 4 — Inventories").kinds == [PROSE]  # one figure and a dash: a title
    wrapped = ("In April 2019, we granted 346,453 PSUs with certain financial targets. These PSUs will become "
               "eligible to vest at 50%")
    assert split_cells(wrapped) is None


def test_headings_are_a_few_captions_not_a_list():
    """At most MAX_HEADING_RUN short lines above a row with figures are its captions; a long list is prose."""
    from filters.tables import MAX_HEADING_RUN

    items = [line for line in tenq("DerivativesPolicyTextBlock").split("\n")
             if line and split_cells(line) is None and len(line.split()) <= 4][:6]
    assert len(items) > MAX_HEADING_RUN
    layout = Layout("\n".join(items + ["Total term debt $102,519 $102,519"]))
    assert layout.kinds.count(HEADING) == MAX_HEADING_RUN and layout.kinds[0] == PROSE
