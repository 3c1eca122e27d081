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
    run = work / "train"
    run.mkdir()
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"kind": "train", "step": 10, "loss": 9.0}, {"kind": "train", "step": 20, "loss": 7.5},
        {"kind": "eval", "split": "val_domain", "step": 20, "loss": 7.25, "ppl": 1408.1, "bpb": 2.5},
    ]) + "\n")
    out = report.main(["--work", str(work)])
    text = out.read_text()
    assert "| clean | `clean/sec` | 37 | 36 | 1 | yes | oversized 1 |" in text
    assert "| filter | `filter/x` | 10 | 7 | 2 | **NO** |" in text
    assert text.index("| clean |") < text.index("| filter |")
    assert "loss 9.000 -> 7.500" in text and "| val_domain | 20 | 7.250 | 1408.1 | 2.500 |" in text
    assert "<table>" in out.with_suffix(".html").read_text()
