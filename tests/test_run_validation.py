"""run.orchestrator checks the whole run config before step 1: every mistake is one ``error:`` line, all of them
at once, exit 2, and no output directory is created. Also: the run-side messages (resume, --force), the
planner printed once, the per-source field mapping, and configs/runs/finance_1b.yaml with its planner numbers."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from run import orchestrator as run
from tests.conftest import DATA, ROOT

SIX = [("sec_10q", "domain", "finance/sec_10q_aapl.jsonl.gz"),
       ("reuters", "domain", "finance/reuters_finance.jsonl.gz"),
       ("bbc_business", "domain", "finance/bbc_business.jsonl.gz"),
       ("austen", "general", "general/austen.jsonl.gz"),
       ("speeches", "general", "general/speeches.jsonl.gz"),
       ("wikipedia_en", "general", "general/wikipedia_en.jsonl.gz")]


def config(tmp: Path, edit=None) -> Path:
    """A valid six-source run config on data/ (the demo's configs), changed by ``edit(doc)``."""
    doc = {
        "work_dir": str(tmp / "work"),
        "sources": [{"name": n, "domain": d, "inputs": [str(DATA / f)]} for n, d, f in SIX],
        "filter": {"config": str(ROOT / "configs" / "filter" / "demo.yaml")},
        "dedup": {"threshold": 0.8},
        "tokenizer": {"config": str(ROOT / "configs" / "tokenizer" / "demo.yaml")},
        "mix": {"target": {"tokens": 20_000}},
        "train": {"config": str(ROOT / "configs" / "train" / "tiny.yaml")},
    }
    if edit:
        edit(doc)
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def refused(tmp: Path, capsys, *argv: str) -> list[str]:
    """Run run.orchestrator on tmp/run.yaml: it must exit 2 before creating the work directory; its error lines."""
    with pytest.raises(SystemExit) as exc:
        run.main(["--config", str(tmp / "run.yaml"), *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert not (tmp / "work").exists()
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines) and "Traceback" not in err
    return lines


def typo_in_filter_override(doc):
    doc["sources"][0]["filter"] = {"gopher_quality": {"min_doc_word": 20}}


def sixth_input_missing(doc):
    doc["sources"][5]["inputs"] = [str(DATA / "general" / "wikipedia_xx.jsonl.gz")]


def train_values(doc):
    doc["train"]["overrides"] = {"train.dtype": "bf32", "train.strategy": "fsdb", "optim.schedule": "linear"}


def vocab_mismatch(doc):
    doc["tokenizer"]["config"] = str(ROOT / "configs" / "tokenizer" / "unigram.yaml")  # 131,072 pieces
    doc["train"]["config"] = str(ROOT / "configs" / "train" / "llama1b.yaml")          # 32,000 rows


@pytest.mark.parametrize("edit, expected", [
    (typo_in_filter_override, ["sources[0] (sec_10q) filter: unknown", "'min_doc_word'",
                               "did you mean 'min_doc_words'"]),
    (sixth_input_missing, ["sources[5] (wikipedia_en): input", "wikipedia_xx.jsonl.gz matches no files"]),
    (lambda d: d["sources"][1].update(domain="finance"), ["domain must be one of domain or general", "'finance'"]),
    (vocab_mismatch, ["vocab_size 131,072", "> model.vocab_size 32,000"]),
    (lambda d: d["train"].update(overrides={"train.dtyp": "bf16"}), ["unknown option train.dtyp",
                                                                     "did you mean train.dtype?"]),
    (lambda d: d["dedup"].update(threshold="high"), ["dedup: argument --threshold: invalid float value: 'high'"]),
    (lambda d: d["dedup"].update(threshold=1.5), ["dedup: --threshold must be in (0, 1), got 1.5"]),
    (lambda d: d["dedup"].update(treshold=0.8), ["unknown dedup keys ['treshold']", "did you mean 'threshold'"]),
    (lambda d: d["mix"].update(domain_share=1.5), ["mix: domain_share must be in [0, 1]"]),
    (lambda d: d["sources"][2].update(mix={"epochs": 2}), ["sources[2] (bbc_business) mix keys ['epochs']"]),
    (lambda d: d["tokenizer"].update(config="configs/tokenizer/nope.yaml"), ["tokenizer.config", "is not a file"]),
    (lambda d: d.update(beam=["--direct_num_wrokers", "2"]), ["beam: unknown option --direct_num_wrokers",
                                                              "did you mean --direct_num_workers?"]),
])
def test_each_mistake_is_one_line_exit_2_and_no_work_dir(tmp_path, capsys, edit, expected):
    config(tmp_path, edit)
    lines = refused(tmp_path, capsys)
    assert len(lines) == 1, lines
    assert all(part in lines[0] for part in expected), lines[0]


def test_train_dtype_strategy_schedule_each_get_their_line(tmp_path, capsys):
    config(tmp_path, train_values)
    lines = refused(tmp_path, capsys)
    assert len(lines) == 3
    for key, bad in (("train.dtype", "bf32"), ("train.strategy", "fsdb"), ("optim.schedule", "linear")):
        assert any(f"{key} must be one of" in line and repr(bad) in line for line in lines), key


def test_every_mistake_is_reported_at_once(tmp_path, capsys):
    def many(doc):
        for edit in (typo_in_filter_override, sixth_input_missing, vocab_mismatch):
            edit(doc)
        doc["sources"][1]["domain"] = "finance"
    config(tmp_path, many)
    lines = refused(tmp_path, capsys)
    assert len(lines) == 4, lines
    assert [any(k in line for line in lines) for k in ("min_doc_word", "wikipedia_xx", "finance", "131,072")] == [
        True] * 4


def test_the_shipped_run_configs_are_valid(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # (their paths are relative to the repository)
    for name in ("demo", "experiment", "finance_1b"):
        assert run.main(["--config", f"configs/runs/{name}.yaml", "--check"]) == []
        out = capsys.readouterr()
        assert f"configs/runs/{name}.yaml: valid" in out.out and not out.err, out.err
        assert not (ROOT / "work" / "finance_1b").exists()


def test_finance_1b_agrees_on_vocabulary_and_hardware_and_refuses_to_run_locally(tmp_path, capsys):
    doc = yaml.safe_load((ROOT / "configs" / "runs" / "finance_1b.yaml").read_text(encoding="utf-8"))
    from mixtures.tokenizer import TokenizerConfig
    from train.config import load_config

    cfg = run.load_run_config(ROOT / "configs" / "runs" / "finance_1b.yaml", remote_inputs=False)
    tokenizer = TokenizerConfig.from_yaml(ROOT / doc["tokenizer"]["config"])
    vocab = doc["tokenizer"].get("vocab_size", tokenizer.vocab_size)
    train = load_config(ROOT / doc["train"]["config"], run._train_overrides(cfg))
    assert vocab == train.model.vocab_size
    assert (train.train.dtype, train.train.strategy, doc["train"]["nproc_per_node"]) == ("bf16", "fsdp", 8)
    assert run.beam_runner(cfg.beam) == "DataflowRunner" and all(p.startswith("gs://") for s in cfg.sources
                                                                 for p in s["inputs"])
    assert any(s.get("format") == "edgar" for s in cfg.sources)
    assert any((s.get("filter") or {}).get("route") == "finance" for s in cfg.sources)
    # run here (not --check), it refuses with one line: Dataflow workers cannot write the local work directory
    doc["work_dir"] = str(tmp_path / "work")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    lines = refused(tmp_path, capsys)
    assert len(lines) == 1 and "--runner DataflowRunner" in lines[0] and "--check" in lines[0]


def test_finance_1b_comments_are_the_planners_numbers(capsys):
    """The planner command in the config's comments is rerun; every number the comments quote must match."""
    from train import plan

    text = (ROOT / "configs" / "runs" / "finance_1b.yaml").read_text(encoding="utf-8")
    command = re.search(r"^#\s+python -m train\.plan (.+)$", text, re.M).group(1)
    plan.main([*shlex.split(command), "--json"])
    p = json.loads(capsys.readouterr().out)
    fsdp = next(r for r in p["memory"]["rows"] if r["strategy"] == "fsdp" and not r["cpu_offload"]
                and not r["activation_checkpointing"])
    quoted = {
        rf"N = {p['model']['n_params']:,.0f} parameters",
        rf"D = 20 N = {p['data']['tokens'] / 1e9:.2f}B tokens",
        rf"domain 51% = {p['data']['domain_tokens'] / 1e9:.2f}B, general {p['data']['general_tokens'] / 1e9:.2f}B",
        rf"6ND = {p['compute']['flops']:.2e} FLOPs = {p['compute']['pfs_days']:.2f} petaflop/s-days",
        rf"micro-batch {fsdp['micro_batch']} x {p['model']['seq_len']}, no activation checkpointing: "
        rf"{fsdp['total'] / 1e9:.1f} GB of {p['cluster']['usable_bytes_per_gpu'] / 1e9:.1f} GB usable",
        rf"{p['compute']['mfu']:.0%} MFU of {p['gpu']['peak_flops'] / 1e12:.1f} TFLOP/s",
        rf"{p['compute']['gpu_hours']:.0f} GPU-hours = {p['compute']['wall_clock_days'] * 24:.1f} hours on "
        rf"{p['cluster']['gpus']} GPUs",
    }
    missing = [q for q in quoted if q not in text]
    assert not missing, missing
    assert fsdp["fits"] and 1.0e9 < p["model"]["n_params"] < 1.2e9


def test_text_and_id_fields_reach_the_clean_stage(tmp_path):
    def fields(doc):
        doc["sources"][0].update(text_field="article.body", id_field="article.uid")
    cfg = run.load_run_config(config(tmp_path, fields))
    argv = run.Runner(cfg)._clean(cfg.sources[0], cfg.beam).depends["argv"]
    assert argv[argv.index("--text-field") + 1] == "article.body"
    assert argv[argv.index("--id-field") + 1] == "article.uid"
    other = run.Runner(cfg)._clean(cfg.sources[1], cfg.beam).depends["argv"]
    assert "--text-field" not in other  # a source without them keeps its command line (and fingerprint)


# ----------------------------------------------------------------------------- run-side messages

class FakeSteps(run.Runner):
    """The orchestrator with every stage replaced by a step that writes a marker (no Beam, no training)."""

    plans = 0

    def _step(self, stage: str, name: str) -> run.Step:
        out = self.work / name.replace(":", "-")

        def write():
            out.mkdir(parents=True, exist_ok=True)
            if stage == "train":
                (out / "checkpoints").mkdir(exist_ok=True)
        return run.Step(stage, name, out, {"name": name, "after": sorted(self.fingerprints.values())}, write,
                        keep_output=stage == "train",
                        resume_note=(lambda: run._train_resume_note(out)) if stage == "train" else None)

    def _clean(self, s, beam):
        return self._step("clean", f"clean:{s['name']}")

    def _filter(self, s, beam):
        return self._step("filter", f"filter:{s['name']}")

    def _dedup(self, beam):
        return self._step("dedup", "dedup")

    def _tokenizer(self):
        return self._step("tokenizer", "tokenizer")

    def _tokenize(self, beam):
        return self._step("tokenize", "tokenize")

    def _mix(self):
        return self._step("mix", "mix")

    def _train(self):
        return self._step("train", "train")

    def _export(self):
        return self._step("export", "export")

    def print_plan(self):
        FakeSteps.plans += 1


def test_planner_printed_once_resume_and_force_say_what_happens(tmp_path, capsys):
    cfg = run.load_run_config(config(tmp_path))
    FakeSteps.plans = 0
    FakeSteps(cfg, until="export").run()
    FakeSteps(cfg, until="export").run()  # every step up to date: no second estimate
    assert FakeSteps.plans == 1
    capsys.readouterr()

    # a training interrupted before its first checkpoint: its record says running, its output is there
    record = cfg.work_dir / ".run" / "train.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "status": "running"}))
    FakeSteps(cfg, until="train").run()
    out = capsys.readouterr().out
    assert "run: train: starting from step 0: no checkpoint yet" in out and "resuming" not in out
    assert FakeSteps.plans == 2  # the training ran: its estimate was printed

    step = cfg.work_dir / "train" / "checkpoints" / "step_00000030"
    step.mkdir(parents=True)
    (step / "meta.json").write_text(json.dumps({"step": 30}))
    assert run._train_resume_note(cfg.work_dir / "train") == "resuming from the checkpoint of step 30"

    FakeSteps(cfg, until="train", force="train").run()
    out = capsys.readouterr().out
    assert "run: train: forced (--force train); the previous run was moved to" in out
    assert "settings changed" not in out


def test_the_checked_choices_are_the_ones_the_trainer_uses():
    """train/config.py checks dtype, strategy and schedule when the config is read; the code that uses them
    must accept exactly those values (else a checked config could still fail at step 1)."""
    from train import config, parallel, precision, schedule

    assert set(config.STRATEGIES) == set(parallel.STRATEGIES)
    assert set(config.SCHEDULES) == set(schedule.SCHEDULES)
    # train.dtype: the trainer resolves it through train/precision.py's one table, as the check does
    assert config.DTYPES == tuple(precision.names("train"))
    assert all(precision.trainer_format(d, "cpu").trainable for d in config.DTYPES)
    with pytest.raises(ValueError, match="not a number format train accepts"):
        precision.trainer_format("int8", "cpu")
