"""Continued pretraining (issue 22, items 2 and 3): a phased mixture trained phase by phase, switching at the
computed step and resuming exactly inside a phase and across the boundary after a SIGKILL; WSD decay placed
on the last phase; re-warming from a base's weights; and every place that refuses a tokenizer other than the
base's (mixer, trainer, run.orchestrator --check)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tokenizers import Tokenizer

from core.config import ConfigError
from mixtures import mix as M
from mixtures import tokenizer as T
from mixtures.recipe import RecipeError
from mixtures.shards import TokenStream
from tests.conftest import ROOT
from tests.test_mix import VOCAB, _paragraphs, _write_source
from train import checkpoint as ckpt
from train.config import load_config
from train.data import PhasedBatches, StepBatches, phase_steps
from train.metrics import read_metrics
from train.trainer import KILL_ENV, open_data, train

TINY = ROOT / "configs" / "train" / "tiny.yaml"
GBT = 512  # tokens per step: 8 sequences of 64
PHASES = [{"name": "blend", "tokens": 3_000, "domain_share": 0.51},
          {"name": "anneal", "tokens": 1_500, "domain_share": 0.9, "weights": {"reuters": 1}}]
BOUNDARY = 6  # ceil(3000 / 512): phase 2's first step is step 7


@pytest.fixture(scope="module")
def tokens(tmp_path_factory, finance_docs, general_docs):
    """Real finance (domain) and general paragraphs, tokenized with a 400-piece BPE laid out like the tokenize
    stage's output."""
    root = tmp_path_factory.mktemp("tokens")
    fin, gen = _paragraphs(finance_docs, 1_500), _paragraphs(general_docs, 400)
    tok = T.train_tokenizer([t for _, t in fin[:200] + gen[:200]], T.TokenizerConfig(type="bpe", vocab_size=VOCAB))
    tok.save(str(root / "tokenizer.json"))
    counts = {"domain/reuters": _write_source(root, "domain/reuters", fin, tok, 1),
              "general/bbc": _write_source(root, "general/bbc", gen, tok, 1)}
    stats = {"stage": "tokenize", "tokenizer": {"file": "tokenizer.json", "sha256": T.file_sha256(
        root / "tokenizer.json"), "vocab_size": VOCAB}, "sources": {k: {"tokens": n} for k, n in counts.items()}}
    (root / "stats.json").write_text(json.dumps(stats))
    return root


def recipe(tokens: Path, tmp: Path, **over) -> Path:
    doc = {"tokens_dir": str(tokens), "seed": 3, "max_epochs": 4, "val_fraction": 0.05, "shard_tokens": 2_000,
           "sources": [{"name": "reuters", "domain": "domain"}, {"name": "bbc", "domain": "general"}],
           "phases": PHASES, **over}
    path = tmp / f"recipe{len(list(tmp.glob('recipe*')))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def phased(tokens, tmp_path_factory):
    out = tmp_path_factory.mktemp("phased")
    M.mix(M.load_recipe(recipe(tokens, out)), out / "mix")
    return out / "mix"


def overrides(mix: Path, out: Path, *more: str) -> list[str]:
    return [f"data.dir={mix}", f"train.out_dir={out}", "train.steps=0", "train.log_every=1", "train.eval_every=0",
            "train.eval_tokens=1024", "train.progress=false", "train.tensorboard=false", "train.strategy=fsdp",
            f"train.global_batch_tokens={GBT}", "train.micro_batch=4", "optim.warmup_steps=2", *more]


def losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "train"}


def weights(out: Path, step: int) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    flat = out / f"w{step}.pt"
    dcp_to_torch_save(ckpt.step_dir(out / "checkpoints", step), flat)
    return torch.load(flat, weights_only=True)["model"]


# ----------------------------------------------------------------------------- the mixer

def test_mixer_writes_one_stream_per_phase_with_its_own_accounting(phased):
    m = json.loads((phased / "manifest.json").read_text())
    assert [p["dir"] for p in m["phases"]] == ["train_phase1_blend", "train_phase2_anneal"]
    assert not (phased / "train").exists()
    val = set()
    for split in ("val_domain", "val_general"):
        val |= set(zip(*_ids(phased / split)))
    for spec, p in zip(PHASES, m["phases"]):
        stream = TokenStream(phased / p["dir"])
        assert len(stream) == p["train_tokens"] == p["split"]["tokens"]
        assert abs(p["train_tokens"] - spec["tokens"]) <= 0.02 * spec["tokens"]
        assert abs(p["domain_share_actual"] - spec["domain_share"]) <= 0.03
        assert sum(s["sampled_tokens"] for s in p["sources"].values()) == p["train_tokens"]
        assert not set(zip(*_ids(phased / p["dir"]))) & val  # no held-out document in any phase
    anneal = m["phases"][1]["sources"]
    assert anneal["reuters"]["weight"] == 1.0  # the phase's weights; bbc keeps its own (the phase names no general)
    assert m["train_tokens"] == sum(p["train_tokens"] for p in m["phases"]) == m["splits"]["train"]["tokens"]
    for name, s in m["sources"].items():  # the whole run: the phases summed
        assert s["sampled_tokens"] == sum(p["sources"][name]["sampled_tokens"] for p in m["phases"])
        assert s["epochs"] == pytest.approx(sum(p["sources"][name]["epochs"] for p in m["phases"]))
    left = m["phases"][1]["sources"]["reuters"]["epochs_left_before"]
    assert left == pytest.approx(4 - m["phases"][0]["sources"]["reuters"]["epochs"])


def _ids(split: Path) -> tuple[list[str], list[str]]:
    import pyarrow.parquet as pq

    t = pq.read_table(next(split.glob("*.index.parquet")))
    return t.column("source").to_pylist(), t.column("id").to_pylist()


def test_phase_weights_can_leave_a_source_out_and_max_epochs_is_a_run_budget(tokens, tmp_path):
    phases = [{"name": "a", "tokens": 2_000, "domain_share": 0.5},
              {"name": "b", "tokens": 30_000, "domain_share": 1.0, "weights": {"reuters": 1}}]
    with pytest.raises(M.ShortfallError, match="phase b: "):  # reuters has ~40k tokens, max_epochs 0.5 in all
        M.mix(M.load_recipe(recipe(tokens, tmp_path, phases=phases, max_epochs=0.5)), tmp_path / "short")
    phases[1]["weights"] = {"bbc": 0, "reuters": 1}
    phases[1]["domain_share"] = 0.8
    with pytest.raises(RecipeError, match="every general source it names has weight 0"):
        M.load_recipe(recipe(tokens, tmp_path, phases=phases))
    with pytest.raises(RecipeError, match="remove target"):
        M.load_recipe(recipe(tokens, tmp_path, target={"tokens": 10}))
    with pytest.raises(RecipeError, match=r"unknown sources \['wiki'\]"):
        M.load_recipe(recipe(tokens, tmp_path, phases=[{"name": "a", "tokens": 5, "weights": {"wiki": 1}}]))
    with pytest.raises(RecipeError, match="name"):
        M.load_recipe(recipe(tokens, tmp_path, phases=[{"name": "a/b", "tokens": 5}]))


def test_phases_are_seeded_per_phase_and_rebuild_to_the_same_bytes(tokens, phased, tmp_path):
    again = tmp_path / "again"
    M.mix(M.load_recipe(recipe(tokens, tmp_path)), again)
    for f in sorted(p for p in phased.rglob("*") if p.is_file() and p.name != "manifest.json"):
        assert f.read_bytes() == (again / f.relative_to(phased)).read_bytes(), f
    renamed = [dict(PHASES[0], name="other"), PHASES[1]]  # another phase name: another sample for that phase
    M.mix(M.load_recipe(recipe(tokens, tmp_path, phases=renamed)), tmp_path / "renamed")
    assert _ids(tmp_path / "renamed" / "train_phase1_other") != _ids(phased / "train_phase1_blend")
    assert _ids(tmp_path / "renamed" / "train_phase2_anneal") == _ids(phased / "train_phase2_anneal")


def test_mixer_refuses_a_recipe_tokenizer_that_is_not_the_sources(tokens, tmp_path):
    other = T.train_tokenizer(["A different sample of text, so a different vocabulary."] * 50,
                              T.TokenizerConfig(type="bpe", vocab_size=VOCAB))
    other.save(str(tmp_path / "other.json"))
    with pytest.raises(RecipeError, match="is not the tokenizer the sources were tokenized with") as exc:
        M.mix(M.load_recipe(recipe(tokens, tmp_path, tokenizer=str(tmp_path / "other.json"))), tmp_path / "x")
    assert "\n" not in str(exc.value)
    # the same file named in the recipe is accepted
    M.mix(M.load_recipe(recipe(tokens, tmp_path, tokenizer=str(tokens / "tokenizer.json"),
                               phases=PHASES[:1])), tmp_path / "same")


# ----------------------------------------------------------------------------- steps and batches

def test_phase_steps_one_pass_or_shared_out_by_tokens():
    assert phase_steps([3_000, 1_500], 512) == [6, 3]
    assert phase_steps([3_000, 1_000], 512, steps=8) == [6, 2]
    assert phase_steps([1, 1, 1], 512, steps=3) == [1, 1, 1]
    with pytest.raises(ValueError, match="leaves a phase without a step"):
        phase_steps([10_000, 10], 512, steps=5)


def test_phased_batches_switch_stream_and_order_is_a_function_of_seed_and_phase(phased):
    m = json.loads((phased / "manifest.json").read_text())
    streams = [TokenStream(phased / p["dir"]) for p in m["phases"]]
    parts = [StepBatches(s, 64, 8, 0, 1, 4, 9, phase=i) for i, s in enumerate(streams)]
    pb = PhasedBatches(parts, [6, 3], ["blend", "anneal"])
    assert [pb.locate(s) for s in (0, 5, 6, 8)] == [(0, 0), (0, 5), (1, 0), (1, 2)]
    assert np.array_equal(pb.tokens(6), StepBatches(streams[1], 64, 8, 0, 1, 4, 9, phase=1).tokens(0))
    assert not np.array_equal(pb.tokens(6), StepBatches(streams[1], 64, 8, 0, 1, 4, 9, phase=0).tokens(0))
    with pytest.raises(IndexError):
        pb.tokens(9)


# ----------------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def uninterrupted(phased, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    train(load_config(TINY, overrides(phased, out, "train.ckpt_every=0")))
    return out


def test_the_switch_happens_at_the_computed_step(uninterrupted, phased):
    records = read_metrics(uninterrupted / "metrics.jsonl")
    phases = [r for r in records if r["kind"] == "phase"]
    assert [(r["step"], r["name"], r["steps"]) for r in phases] == [(0, "blend", BOUNDARY), (BOUNDARY, "anneal", 3)]
    trained = {r["step"]: r["phase"] for r in records if r["kind"] == "train"}
    assert trained == {s: int(s > BOUNDARY) for s in range(1, BOUNDARY + 4)}
    meta = ckpt.read_meta(ckpt.latest_checkpoint(uninterrupted / "checkpoints"))
    assert (meta["step"], meta["data"]["phase_name"], meta["data"]["phase_step"]) == (9, "anneal", 3)


def _killed_then_resumed(phased: Path, out: Path, kill: int, every: int) -> subprocess.CompletedProcess:
    """``python -m train.run`` (one gloo rank) SIGKILLed right after step ``kill``, then resumed in-process."""
    cmd = [sys.executable, "-m", "train.run", "--config", str(TINY),
           *overrides(phased, out, f"train.ckpt_every={every}", "train.keep_checkpoints=0")]
    killed = subprocess.run(cmd, cwd=ROOT, env={**os.environ, KILL_ENV: str(kill)}, capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode != 0 and max(losses(out)) == kill, killed.stderr[-2000:]
    train(load_config(TINY, overrides(phased, out, f"train.ckpt_every={every}", "train.keep_checkpoints=0")))
    return killed


@pytest.mark.parametrize("kill, every, phase, phase_step", [(BOUNDARY, BOUNDARY - 1, 0, BOUNDARY - 1),
                                                            (BOUNDARY + 1, BOUNDARY + 1, 1, 1)])
def test_sigkilled_run_resumes_bit_identically_before_and_after_the_boundary(phased, uninterrupted, tmp_path,
                                                                             kill, every, phase, phase_step):
    """Killed after step 6 with the newest checkpoint at step 5 (the resumed run crosses the boundary), and
    killed after step 7 with a checkpoint there (resumed inside phase 2)."""
    _killed_then_resumed(phased, tmp_path, kill, every)
    meta = ckpt.read_meta(ckpt.step_dir(tmp_path / "checkpoints", every))
    assert (meta["data"]["phase"], meta["data"]["phase_step"]) == (phase, phase_step)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["start_step"] for r in records if r["kind"] == "start"] == [0, every]
    assert losses(tmp_path) == losses(uninterrupted)
    final_ref, final = weights(uninterrupted, 9), weights(tmp_path, 9)
    assert final.keys() == final_ref.keys() and all(torch.equal(final[k], final_ref[k]) for k in final)
    got = json.loads((tmp_path / "summary.json").read_text())["eval"]
    ref = json.loads((uninterrupted / "summary.json").read_text())["eval"]
    assert {k: v["loss"] for k, v in got.items()} == {k: v["loss"] for k, v in ref.items()}


def test_resume_refuses_changed_phases(phased, uninterrupted, tmp_path):
    shutil.copytree(uninterrupted / "checkpoints", tmp_path / "checkpoints")
    with pytest.raises(ConfigError, match="phases or train.steps changed"):
        train(load_config(TINY, overrides(phased, tmp_path, "train.ckpt_every=0", "train.steps=12")))


def test_wsd_decay_on_the_last_phase(phased, tmp_path):
    cfg = load_config(TINY, overrides(phased, tmp_path, "optim.schedule=wsd", "optim.decay_on_last_phase=true",
                                      "optim.min_lr_ratio=0.0", "train.ckpt_every=-1"))
    train(cfg)
    lr = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"}
    peak = cfg.optim.lr
    assert lr[1] == pytest.approx(peak / 2) and all(lr[s] == peak for s in range(2, BOUNDARY + 2))
    assert lr[BOUNDARY + 2] < lr[BOUNDARY + 1] and lr[BOUNDARY + 3] < lr[BOUNDARY + 2]  # decays in phase 2 only
    with pytest.raises(ConfigError, match="needs optim.schedule=wsd"):
        load_config(TINY, ["optim.decay_on_last_phase=true"])


def test_decay_on_last_phase_needs_a_phased_mixture(tokens, tmp_path):
    doc = {"tokens_dir": str(tokens), "seed": 3, "val_fraction": 0.05, "target": {"tokens": 3_000},
           "sources": [{"name": "reuters", "domain": "domain"}, {"name": "bbc", "domain": "general"}]}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(doc))
    M.mix(M.load_recipe(tmp_path / "r.yaml"), tmp_path / "plain")
    cfg = load_config(TINY, overrides(tmp_path / "plain", tmp_path / "o", "optim.schedule=wsd",
                                      "optim.decay_on_last_phase=true"))
    with pytest.raises(ConfigError, match="has no phases"):
        open_data(cfg, 0, 1)


# ----------------------------------------------------------------------------- a base's tokenizer and re-warming

@pytest.fixture(scope="module")
def base(phased, tmp_path_factory):
    """A tiny random Llama of the mixture's vocabulary, saved with the mixture's tokenizer.json (its "own")."""
    from tests.test_hf_import import llama3, save

    d = tmp_path_factory.mktemp("base")
    hf = save(llama3(vocab_size=VOCAB, tie_word_embeddings=True), d / "model")
    shutil.copyfile(phased / "tokenizer.json", d / "model" / "tokenizer.json")
    return d / "model", hf


def continued(base_dir: Path, tmp: Path) -> Path:
    """tiny.yaml's trainer settings with the base as the model (init_from decides the architecture)."""
    path = tmp / "continue.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(TINY.read_text()),
                                    "model": {"init_from": str(base_dir), "seq_len": 64}}))
    return path


def test_trainer_refuses_a_mixture_of_another_tokenizer_than_the_base(base, phased, tmp_path):
    d, _ = base
    other = tmp_path / "other"
    shutil.copytree(d, other)
    T.train_tokenizer(["Another sample of text, so another vocabulary and other ids."] * 40,
                      T.TokenizerConfig(type="bpe", vocab_size=VOCAB)).save(str(other / "tokenizer.json"))
    cfg = load_config(continued(other, tmp_path), overrides(phased, tmp_path / "run"))
    with pytest.raises(ConfigError, match="is not the tokenizer of model.init_from") as exc:
        train(cfg)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # before any step


def test_continued_run_rewarms_from_the_base_weights(base, phased, tmp_path):
    """model.init_from: step 1 trains the base's weights (its loss is the base's on that batch, as
    transformers computes it) with a fresh optimizer at the first warmup learning rate."""
    d, hf = base
    cfg = load_config(continued(d, tmp_path), overrides(phased, tmp_path, "train.ckpt_every=-1",
                                                        "optim.warmup_steps=4", "train.strategy=ddp"))
    data = open_data(cfg, 0, 1)
    batch = torch.from_numpy(data.batches.tokens(0).astype(np.int64))
    with torch.no_grad():
        ref = np.mean([torch.nn.functional.cross_entropy(hf(x[:, :-1]).logits.flatten(0, 1), x[:, 1:].flatten())
                       .item() for x in batch])
    train(cfg)
    first = next(r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train")
    assert first["step"] == 1 and first["lr"] == pytest.approx(cfg.optim.lr / 4)
    assert first["loss"] == pytest.approx(ref, abs=1e-4)


def test_run_check_reports_a_pretrained_tokenizer_that_is_not_the_base(base, tmp_path, capsys):
    from run import orchestrator as run
    from tests.test_run_validation import config

    d, _ = base
    other = tmp_path / "tok"
    other.mkdir()
    Tokenizer.from_str(T.train_tokenizer(["Some other text for another tokenizer."] * 20, T.TokenizerConfig(
        type="bpe", vocab_size=300)).to_str()).save(str(other / "tokenizer.json"))
    train_cfg = continued(d, tmp_path)

    def edit(doc):
        doc["tokenizer"] = {"pretrained": str(other)}
        doc["train"]["config"] = str(train_cfg)
    config(tmp_path, edit)
    with pytest.raises(SystemExit) as exc:
        run.main(["--config", str(tmp_path / "run.yaml"), "--check"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    mine = [line for line in err.splitlines() if "init_from" in line]
    assert len(mine) == 1 and mine[0].startswith("error: ") and "tokenizer.pretrained" in mine[0], err
    assert "is not the tokenizer of train's model.init_from" in mine[0]
    config(tmp_path, lambda doc: doc["train"].update(config=str(train_cfg)))  # a trained tokenizer: also refused
    with pytest.raises(SystemExit):
        run.main(["--config", str(tmp_path / "run.yaml"), "--check"])
    assert "set tokenizer: {pretrained:" in capsys.readouterr().err
    config(tmp_path, lambda doc: (doc.update(tokenizer={"pretrained": str(d)}),
                                  doc["train"].update(config=str(train_cfg))))
    run.main(["--config", str(tmp_path / "run.yaml"), "--check"])  # the base's own tokenizer: valid
    assert "valid" in capsys.readouterr().out


def test_a_continued_run_resumes_bit_identically_across_the_boundary(base, phased, tmp_path):
    """model.init_from + a phased mixture (the continued-pretraining case): SIGKILLed after the first step of
    phase 2 with its newest checkpoint in phase 1, the resumed run loads the checkpoint, not the base, crosses the
    boundary and ends with the uninterrupted run's losses and weights, bit for bit."""
    config = continued(base[0], tmp_path)
    every = [f"train.ckpt_every={BOUNDARY - 1}", "train.keep_checkpoints=0"]
    ref, out = tmp_path / "ref", tmp_path / "resumed"
    train(load_config(config, overrides(phased, ref, *every)))
    cmd = [sys.executable, "-m", "train.run", "--config", str(config), *overrides(phased, out, *every)]
    killed = subprocess.run(cmd, cwd=ROOT, env={**os.environ, KILL_ENV: str(BOUNDARY + 1)}, capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode != 0 and max(losses(out)) == BOUNDARY + 1, killed.stderr[-2000:]
    train(load_config(config, overrides(phased, out, *every)))
    starts = [r["start_step"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "start"]
    assert starts == [0, BOUNDARY - 1]
    assert losses(out) == losses(ref)
    last = BOUNDARY + 3
    final_ref, final = weights(ref, last), weights(out, last)
    assert final.keys() == final_ref.keys() and all(torch.equal(final[k], final_ref[k]) for k in final)
