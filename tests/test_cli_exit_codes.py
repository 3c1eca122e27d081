"""One exit-status convention for every command (``core/cli.py``): a user's mistake (a path
that does not exist, a config that cannot be used) is exit 2 with one ``error:`` line and no traceback."""

from __future__ import annotations

import importlib
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
        "tests.bytemix missing file": ["tests.bytemix", str(tmp / "o5"), "--domain", missing, "--general", missing],
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


# ---------------------------------------------------------------------------- strict options and config keys
# Each mistake: exit 2, exactly one line on stderr naming it (and the closest known name), before any output
# directory exists. A misspelled stage flag used to reach Beam, which logs "Discarding unparseable args" and
# runs with the defaults (exit 0).

def _strict_cases(tmp):
    out, inputs = str(tmp / "out"), str(DATA / "finance/*.jsonl.gz")
    stage = ["--input", inputs, "--output", out]
    return {
        "dedup --treshold": (["pipelines.dedup", *stage, "--treshold", "0.8"],
                             "unknown option --treshold (did you mean --threshold?)"),
        "dedup --treshold=": (["pipelines.dedup", *stage, "--treshold=0.8", "--runner", "DirectRunner"],
                              "unknown option --treshold (did you mean --threshold?)"),
        "filter --confg": (["pipelines.filter", *stage, "--confg", "configs/filter/demo.yaml"],
                           "unknown option --confg (did you mean --config?)"),
        "run --confg": (["run.orchestrator", "--confg", "configs/runs/demo.yaml"],
                        "unknown option --confg (did you mean --config?)"),
        "clean --txt-field": (["pipelines.clean", *stage, "--domain", "domain", "--txt-field", "body"],
                              "unknown option --txt-field (did you mean --text-field?)"),
        "clean Beam typo": (["pipelines.clean", *stage, "--domain", "domain", "--runer", "DirectRunner"],
                            "unknown option --runer (did you mean --runner?)"),
        "clean stray value": (["pipelines.clean", *stage, "--domain", "domain", "--save_main_session", "yes"],
                              "unexpected argument 'yes' (to give several inputs, repeat --input)"),
        "tokenize --batchsize": (["pipelines.tokenize", *stage, "--tokenizer", "t.json", "--batchsize", "8"],
                                 "unknown option --batchsize (did you mean --batch-size?)"),
        "dedup misspelled required": (["pipelines.dedup", "--inputs", inputs, "--output", out],
                                      "unknown option --inputs (did you mean --input?)"),
        "mix --recpie": (["mixtures.mix", "--recpie", "mixtures/recipes/demo.yaml", "--output", out],
                         "unknown option --recpie (did you mean --recipe?)"),
        "tokenizer --vocab_size": (["mixtures.tokenizer", "--config", "configs/tokenizer/demo.yaml", "--input", inputs,
                                    "--output", out, "--vocab_size", "512"],
                                   "unknown option --vocab_size (did you mean --vocab-size?)"),
        "dataset_card --wrok": (["run.dataset_card", "--wrok", out, "--config", "configs/runs/demo.yaml"],
                                "unknown option --wrok (did you mean --work?)"),
        "plan --param": (["train.plan", "--param", "1e9"], "unknown option --param (did you mean --params?)"),
        "export --outptu": (["train.export", "--checkpoint", out, "--outptu", out],
                            "unknown option --outptu (did you mean --output?)"),
        "filter profile key": (["pipelines.filter", *stage, "--config", str(tmp / "profile_key.yaml")],
                               "filter config domains.domain.gopher_quality keys ['min_doc_word'] "
                               "(did you mean 'min_doc_words'?)"),
        "filter route entry key": (["pipelines.filter", *stage, "--config", str(tmp / "route_key.yaml")],
                                   "filter config route[0] keys ['treshold'] (did you mean 'threshold'?)"),
        "mix entry key": (["mixtures.mix", "--recipe", str(tmp / "recipe_key.yaml"), "--output", out],
                          "sources[0] keys ['wieght'] (did you mean 'weight'?)"),
    }


STRICT = sorted(_strict_cases(Path("tmp")))


@pytest.mark.parametrize("case", STRICT)
def test_unknown_options_and_keys_exit_2_with_one_line_and_no_output(case, tmp_path, monkeypatch, capsys):
    (tmp_path / "profile_key.yaml").write_text("domains:\n  domain:\n    gopher_quality:\n      min_doc_word: 20\n")
    (tmp_path / "route_key.yaml").write_text("route:\n  - name: finance\n    treshold: 0.5\n")
    (tmp_path / "recipe_key.yaml").write_text(
        "tokens_dir: work/tokens\ntarget: {tokens: 1000}\n"
        "sources:\n  - {name: reuters, domain: domain, wieght: 1}\n  - {name: wiki, domain: general}\n")
    (module, *argv), expected = _strict_cases(tmp_path)[case]
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit_:  # in-process (each command's main(argv)): fast
        importlib.import_module(module).main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err[-2000:]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err[-2000:]
    assert not (tmp_path / "out").exists()


def test_beam_options_pass_through_strict_parsing():
    """Beam's own flags (any PipelineOptions subclass, with or without =value, repeated, boolean) are
    not refused, and the runner stays DirectRunner unless one is named."""
    from apache_beam.options.pipeline_options import DebugOptions, GoogleCloudOptions, StandardOptions

    from pipelines.options import parse, stage_parser

    args, options = parse(stage_parser("t"), ["--output", "o", "--project", "p", "--region=europe-west1",
                                              "--temp_location", "gs://b/tmp", "--save_main_session",
                                              "--experiments", "a", "--experiments=b", "--runner=DataflowRunner"])
    assert args.output == "o" and options.view_as(StandardOptions).runner == "DataflowRunner"
    assert options.view_as(GoogleCloudOptions).region == "europe-west1"
    assert options.view_as(DebugOptions).experiments == ["a", "b"]
    _, default = parse(stage_parser("t"), ["--output", "o", "--direct_num_workers", "2"])
    assert default.view_as(StandardOptions).runner == "DirectRunner"
