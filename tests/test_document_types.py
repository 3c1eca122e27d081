"""The embedded EDGAR filing's path into the data (clean -> filter) and kept rates by document type:
counted by the stages (``by_type`` in stats.json) and shown by the run report."""

from __future__ import annotations

import glob
import json

import pyarrow.parquet as pq
import pytest

from core.documents import document_type, meta_json
from pipelines import clean
from pipelines import filter as filter_stage
from run import report
from tests.conftest import DATA

FILING = DATA / "edgar" / "apple_8k_20191115.txt"  # Apple's 8-K of 2019-11-15, as EDGAR serves it


def test_document_type_names_edgar_documents_web_pages_and_text():
    assert document_type(meta_json({"format": "edgar", "type": "EX-99.1", "form_type": "8-K"})) == "EDGAR EX-99.1"
    assert document_type(meta_json({"format": "edgar", "form_type": "10-K"})) == "EDGAR 10-K"
    assert document_type(meta_json({"format": "html", "url": "https://example.com"})) == "web page"
    assert document_type(meta_json({"title": "format of a note"})) == "text"
    assert document_type("{not json") == "text" and document_type(None) == "text"


@pytest.fixture(scope="module")
def filing_run(tmp_path_factory):
    """The real filing through the clean stage (format auto-detected) and the filter stage's defaults."""
    work = tmp_path_factory.mktemp("work")
    cleaned = clean.main(["--input", str(FILING), "--output", str(work / "clean/sec_8k"), "--domain", "domain",
                          "--source", "sec_8k", "--runner", "DirectRunner"])
    filtered = filter_stage.main(["--input", str(work / "clean/sec_8k"), "--output", str(work / "filter/sec_8k"),
                                  "--runner", "DirectRunner"])
    return work, cleaned, filtered


def test_the_filing_becomes_its_text_documents_and_the_rest_is_set_aside_with_reasons(filing_run):
    work, cleaned, _ = filing_run
    assert cleaned["balanced"] and cleaned["input"] == 19  # 19 <DOCUMENT>s in the submission
    types = {t: c["output"] for t, c in cleaned["by_type"].items()}
    assert types == {"EDGAR 8-K": 1, "EDGAR EX-1.1": 1, "EDGAR EX-4.1": 1, "EDGAR EX-5.1": 1}
    not_text = {r: n for r, n in cleaned["removed"].items() if r.startswith("edgar_not_text:")}
    assert sum(not_text.values()) == 15 and not_text == cleaned["removed"]
    rows = pq.read_table(sorted(glob.glob(str(work / "clean/sec_8k/train-*.parquet")))).to_pylist()
    eight_k = next(r for r in rows if json.loads(r["meta"])["type"] == "8-K")
    meta = json.loads(eight_k["meta"])
    assert (meta["company"], meta["cik"], meta["accession_number"], meta["filing_date"]) == (
        "Apple Inc.", "0000320193", "0001193125-19-292676", "2019-11-15")
    assert "Item 8.01" in eight_k["text"] and "ix:header" not in eight_k["text"]


def test_the_filter_counts_judged_and_removed_documents_by_type(filing_run):
    _, cleaned, filtered = filing_run
    by_type = filtered["by_type"]
    assert {t: c["input"] for t, c in by_type.items()} == {t: c["output"] for t, c in cleaned["by_type"].items()}
    assert sum(c.get("removed", 0) for c in by_type.values()) == sum(filtered["removed"].values())
    assert filtered["balanced"] and filtered["output"] >= 3  # the 8-K, the underwriting agreement, the opinion


def test_the_report_shows_the_filing_path_and_kept_rates_by_type(filing_run):
    work, _, filtered = filing_run
    run = report.load_run(work)
    types = report.document_types(run.stages)
    assert types["EDGAR 8-K"] == {"cleaned": 1, "judged": 1, "kept": 1}
    assert sum(t["kept"] for t in types.values()) == filtered["output"]
    html = report.build_html(run)
    assert "Kept by document type" in html and "EDGAR EX-5.1" in html
    assert "set aside as not text" in html and "graphic (3)" in html
