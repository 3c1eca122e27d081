"""One exit-status convention for every command (``pipelines/__init__.py``): a user's mistake (a path
that does not exist, a config that cannot be used) is exit 2 with one ``error:`` line and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA, ROOT


def _cases(tmp):
    """Command lines by case name; ``bad.yaml`` and ``unknown.yaml`` are written by the test."""
    bad_yaml, unknown_key, missing = tmp / "bad.yaml", tmp / "unknown.yaml", str(tmp / "missing")
    return {
        "pipelines.clean missing input": ["pipelines.clean", "--input", f"{missing}/*.jsonl", "--output",
                                          str(tmp / "o1"), "--domain", "domain", "--runner", "DirectRunner"],
        "pipelines.filter bad config": ["pipelines.filter", "--input", str(DATA / "finance/*.jsonl.gz"),
                                        "--output", str(tmp / "o2"), "--config", str(bad_yaml),
                                        "--runner", "DirectRunner"],
        "mixtures.tokenizer missing config": ["mixtures.tokenizer", "--config", f"{missing}.yaml", "--input",
                                              missing, "--output", str(tmp / "o3")],
        "mixtures.tokenizer bad yaml": ["mixtures.tokenizer", "--config", str(bad_yaml), "--input", missing,
                                        "--output", str(tmp / "o3")],
        "mixtures.mix missing recipe": ["mixtures.mix", "--recipe", f"{missing}.yaml", "--output", str(tmp / "o4")],
        "train.plan bad mfu": ["train.plan", "--params", "1e9", "--mfu", "3"],
        "train.plan missing model config": ["train.plan", "--model-config", f"{missing}.yaml"],
        "train.run unknown key": ["train.run", "--config", str(unknown_key)],
        "train.run bad yaml": ["train.run", "--config", str(bad_yaml)],
        "train.run missing mixture": ["train.run", "--config", str(ROOT / "configs/train/tiny.yaml"),
                                      f"data.dir={missing}", f"train.out_dir={tmp / 'run'}"],
        "train.bytemix missing file": ["train.bytemix", str(tmp / "o5"), "--domain", missing, "--general", missing],
        "filters.quality missing model": ["filters.quality", "score", "--model", f"{missing}.ftz", "--input",
                                          missing],
    }


CASES = sorted(_cases(Path("tmp")))


@pytest.mark.parametrize("case", CASES)
def test_user_errors_exit_2_with_one_error_line(case, tmp_path):
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    (tmp_path / "unknown.yaml").write_text("train:\n  stepz: 3\n")
    argv = _cases(tmp_path)[case]
    proc = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]  # argparse: "prog: error: ..."
    assert len(errors) == 1, proc.stderr[-2000:]
