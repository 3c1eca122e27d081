"""The run report accounts for every stage directory it finds."""

import json

from pipelines import clean, report
from tests.conftest import DATA


def test_report_lists_each_stage_and_flags_unbalanced(tmp_path):
    work = tmp_path / "work"
    clean.main(["--input", str(DATA / "finance/sec_10q_aapl.jsonl.gz"), "--output", str(work / "clean/sec"),
                "--domain", "domain", "--max-text-bytes", "20000"])
    broken = work / "filter" / "x"
    broken.mkdir(parents=True)
    (broken / "stats.json").write_text(json.dumps(
        {"stage": "filter", "input": 10, "output": 7, "removed": {"lang_not_allowed": 2}, "balanced": False}))
    out = report.main(["--work", str(work)])
    text = out.read_text()
    assert "| clean | `clean/sec` | 37 | 36 | 1 | yes | oversized 1 |" in text
    assert "| filter | `filter/x` | 10 | 7 | 2 | **NO** |" in text
    assert text.index("| clean |") < text.index("| filter |")
    assert "<table>" in out.with_suffix(".html").read_text()
