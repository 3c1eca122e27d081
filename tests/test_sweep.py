"""The mixture search (mixtures/sweep.py): its mixtures hit their target shares, no held-out document is in any
proxy's training stream, the mixing laws recover known parameters, the same seed gives the same mixtures and
fit, and a bad sweep config is one error line, exit 2. Real text, small sizes; no proxy is trained here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mixtures import sweep as S
from mixtures import tokenizer as T
from mixtures.shards import list_shards, write_doc_index, write_shard
from tests.conftest import DATA, read_jsonl_gz
from tests.test_mix import _paragraphs

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 400
PROXY_CONFIG = str(ROOT / "configs" / "train" / "sweep_proxy.yaml")
CONFIRM_CONFIG = str(ROOT / "configs" / "train" / "experiment.yaml")


@pytest.fixture(scope="module")
def work(tmp_path_factory, finance_docs, general_docs) -> Path:
    """A run's work directory with tokenized real text as the tokenize stage lays it out: two finance sources,
    two general ones (paragraphs, so that shares can be hit closely at small sizes)."""
    root = tmp_path_factory.mktemp("sweep_work")
    tokens = root / "tokens"
    fin = _paragraphs(finance_docs, 4_000)
    gen = _paragraphs(general_docs, 1_200)
    austen = _paragraphs(read_jsonl_gz(DATA / "general" / "austen.jsonl.gz")[:4], 600)
    tok = T.train_tokenizer([t for _, t in fin[:200] + gen[:200]], T.TokenizerConfig(type="bpe", vocab_size=VOCAB))
    tokens.mkdir()
    tok.save(str(tokens / "tokenizer.json"))
    half = len(fin) // 2
    counts = {}
    for rel, docs in (("domain/news_a", fin[:half]), ("domain/news_b", fin[half:]), ("general/bbc", gen),
                      ("general/austen", austen)):
        ids = T.encode_documents(tok, [t for _, t in docs], T.eos_id(tok))
        prefix = tokens / rel / "part-00000-of-00001"
        write_shard(prefix, ids, VOCAB)
        write_doc_index(prefix, [rel.split("/")[1]] * len(docs), [i for i, _ in docs],
                        [len(t.encode()) for _, t in docs])
        counts[rel] = int(sum(a.size for a in ids))
    sha = T.file_sha256(tokens / "tokenizer.json")
    stats = {"stage": "tokenize", "tokenizer": {"file": "tokenizer.json", "sha256": sha, "vocab_size": VOCAB},
             "sources": {rel: {"tokens": n} for rel, n in counts.items()}}
    (tokens / "stats.json").write_text(json.dumps(stats))
    return root


def _run_config(work: Path, tmp_path: Path, sweep: dict | None = None, **mix) -> Path:
    doc = {"work_dir": str(work),
           "sources": [{"name": "news_a", "domain": "domain", "inputs": ["x"]},
                       {"name": "news_b", "domain": "domain", "inputs": ["x"]},
                       {"name": "bbc", "domain": "general", "inputs": ["x"]},
                       {"name": "austen", "domain": "general", "inputs": ["x"]}],
           "mix": {"max_epochs": 4, "val_fraction": 0.05, "seed": 11, "shard_tokens": 50_000, **mix},
           "train": {"config": CONFIRM_CONFIG},
           "sweep": {"proxies": 6, "domain_shares": [0.0, 0.3, 0.6], "holdout": 2, "seed": 3,
                     "proxy_config": PROXY_CONFIG, **(sweep or {})}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _mixtures(work: Path, tmp_path: Path, seed: int = 3, tokens: int = 40_000) -> tuple[list, list[Path], list]:
    plan = S.read_run_config(_run_config(work, tmp_path, {"seed": seed}))
    base = S.base_recipe(plan)
    avail = S.available_tokens(base)
    sides = {s["name"]: s["domain"] for s in base["sources"]}
    mixtures = S.draw_mixtures(plan.sweep, S.base_weights(base, avail), sides)
    dirs, manifests = [], []
    for m in mixtures:
        d = tmp_path / f"mix-seed{seed}" / m["name"]
        manifests.append(S.build_mixture(S.recipe_for(base, m, tokens), d))
        dirs.append(d)
    return mixtures, dirs, manifests


@pytest.fixture(scope="module")
def built(work, tmp_path_factory):
    return _mixtures(work, tmp_path_factory.mktemp("mixes"))


def test_mixtures_hit_their_target_shares(built):
    mixtures, _, manifests = built
    assert [m["domain_share"] for m in mixtures] == [0.0, 0.3, 0.6, 0.0, 0.3, 0.6]
    weights = [m["weights"] for m in mixtures]
    assert len({json.dumps(w, sort_keys=True) for w in weights}) == len(weights)  # each proxy its own weights
    sides = {"news_a": "domain", "news_b": "domain", "bbc": "general", "austen": "general"}
    for m, man in zip(mixtures, manifests):
        total = man["train_tokens"]
        assert abs(man["domain_share_actual"] - m["domain_share"]) <= 0.005
        for name, w in m["weights"].items():
            side_share = m["domain_share"] if sides[name] == "domain" else 1 - m["domain_share"]
            assert abs(man["sources"][name]["sampled_tokens"] / total - side_share * w) <= 0.005, (m["name"], name)
        assert max(S.check_shares(man, m, sides)) <= 0.005
        for side in ("domain", "general"):
            assert sum(w for n, w in m["weights"].items() if sides[n] == side) == pytest.approx(1.0, abs=1e-9)


def test_no_held_out_document_in_any_proxy_stream(built, work, tmp_path):
    _, dirs, _ = built
    held = S.check_held_out(dirs)
    assert held["val_domain"] > 0 and held["val_general"] > 0
    held_keys = set(S.doc_keys(dirs[0] / "val_domain")) | set(S.doc_keys(dirs[0] / "val_general"))
    for d in dirs:
        train = set(S.doc_keys(d / "train"))
        assert train and not held_keys & train
    # per-source held-out splits partition the two held-out sets
    names = S.write_source_splits(dirs[0], VOCAB)
    per = [set(S.doc_keys(dirs[0] / n)) for n in names]
    assert set().union(*per) == held_keys and sum(map(len, per)) == len(held_keys)
    # a mixture held out with another seed has other held-out documents: the check refuses to compare them
    plan = S.read_run_config(_run_config(work, tmp_path, seed=12))
    base = S.base_recipe(plan)
    m = {"name": "x", "domain_share": 0.3, "weights": S.base_weights(base, S.available_tokens(base))}
    S.build_mixture(S.recipe_for(base, m, 40_000), tmp_path / "other")
    with pytest.raises(S.SweepCheckError, match="differs"):
        S.check_held_out([dirs[0], tmp_path / "other"])


def test_same_seed_same_mixtures_and_fit(built, work, tmp_path):
    mixtures, dirs, _ = built
    again, dirs2, _ = _mixtures(work, tmp_path)
    assert again == mixtures
    for a, b in zip(dirs, dirs2):
        for prefix in list_shards(a / "train"):
            name = Path(prefix).name
            assert Path(prefix + ".tokens.npy").read_bytes() == (b / "train" / (name + ".tokens.npy")).read_bytes()
    other, _, _ = _mixtures(work, tmp_path, seed=4)
    assert [m["weights"] for m in other] != [m["weights"] for m in mixtures]
    d = np.array([m["domain_share"] for m in mixtures])
    y = {"val_domain": 6.0 + np.exp(-2 * d), "val_general": 5.0 + 0.3 * d}
    p = np.array([[m["domain_share"], 1 - m["domain_share"]] for m in mixtures])
    fit_a = S.fit_and_check(d, p, y, np.arange(4), np.arange(4, 6))
    fit_b = S.fit_and_check(d, p, y, np.arange(4), np.arange(4, 6))
    assert json.dumps(fit_a, sort_keys=True) == json.dumps(fit_b, sort_keys=True)


def test_mixing_law_recovers_known_parameters():
    rng = np.random.default_rng(0)
    d = np.linspace(0, 0.9, 10)
    c, k, t = 5.2, 1.5, -2.5
    fit = S.fit_exponential(d, c + k * np.exp(t * d))
    assert fit["c"] == pytest.approx(c, abs=1e-4) and fit["k"] == pytest.approx(k, abs=1e-4)
    assert fit["t"] == pytest.approx(t, abs=1e-4)
    noisy = S.fit_exponential(d, c + k * np.exp(t * d) + rng.normal(0, 0.002, d.size))
    assert noisy["t"] == pytest.approx(t, abs=0.15) and noisy["c"] == pytest.approx(c, abs=0.05)
    # RegMix-style linear law: the loss of each pure source
    w = np.array([6.5, 5.0, 5.8])
    props = rng.dirichlet([1, 1, 1], size=12)
    assert S.fit_linear(props, props @ w)["w"] == pytest.approx(w.tolist(), abs=2e-3)
    # model choice by leave-one-out error: the law that generated the losses wins, and predicts unseen points
    dd = rng.uniform(0, 0.9, 14)
    pp = np.column_stack([dd, 1 - dd])
    exp_y = {"val_domain": c + k * np.exp(t * dd), "val_general": 5.0 + 0.4 * np.exp(3 * dd)}
    res = S.fit_and_check(dd, pp, exp_y, np.arange(10), np.arange(10, 14))
    assert res["chosen"] == "mixing_law_exp"
    assert res["held_out"]["val_domain"]["mae"] < 1e-3 and res["held_out"]["val_domain"]["spearman"] == 1.0
    props = rng.dirichlet([2, 2, 2], size=14)
    lin_y = {"val_domain": props @ w, "val_general": props @ np.array([5.0, 5.5, 6.0])}
    res = S.fit_and_check(props[:, 0], props, lin_y, np.arange(10), np.arange(10, 14))
    assert res["chosen"] == "regmix_linear" and res["held_out"]["val_general"]["mae"] < 1e-2


def test_front_and_recommendation():
    dom = np.array([6.0, 5.5, 5.2, 5.6, 5.0])
    gen = np.array([5.0, 5.1, 5.3, 5.4, 5.6])
    assert S.pareto_front(dom, gen) == [4, 2, 1, 0]  # point 3 is beaten by point 1 on both
    assert S.recommend(dom, gen, reference_general=5.0, tolerance=0.05) == 1   # 5.1 <= 5.25, 5.3 is not
    assert S.recommend(dom, gen, reference_general=5.0, tolerance=0.07) == 2
    assert S.recommend(dom, gen, reference_general=4.0, tolerance=0.05) is None
    assert S.spearman(np.array([1, 2, 3]), np.array([3, 2, 1])) == -1.0


def test_confirmation_verdict_is_derived_from_numbers():
    def runs(rec_dom, ref_dom, rec_gen, ref_gen):
        return ([{"arm": "recommended", "seed": s, "final": {"val_domain": a, "val_general": b}}
                 for s, (a, b) in enumerate(zip(rec_dom, rec_gen))]
                + [{"arm": "51_49", "seed": s, "final": {"val_domain": a, "val_general": b}}
                   for s, (a, b) in enumerate(zip(ref_dom, ref_gen))])
    v = S.confirmation_verdict(runs([5.0, 5.1], [5.6, 5.7], [6.0, 6.1], [5.9, 6.0]), 0.05)
    assert v["beats"] and v["val_domain"]["gap"] == pytest.approx(0.6)
    assert "does not" not in S.verdict_text(v, 0.05)
    v = S.confirmation_verdict(runs([5.0, 5.5], [5.2, 5.4], [6.0, 6.1], [5.9, 6.0]), 0.05)  # gap < spread
    assert not v["beats"] and "does not beat" in S.verdict_text(v, 0.05)
    v = S.confirmation_verdict(runs([5.0, 5.1], [5.6, 5.7], [7.0, 7.1], [5.9, 6.0]), 0.05)  # general too costly
    assert not v["beats"] and not v["general_within_tolerance"]


def test_metrics_reader_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    recs = [{"kind": "eval", "step": 10, "split": "val_domain", "loss": 6.1},
            {"kind": "eval", "step": 20, "split": "val_domain", "loss": 5.9},
            {"kind": "eval", "step": 20, "split": "val_general", "loss": 5.5}]
    path.write_text("\n".join(json.dumps(r) for r in recs) + '\n{"kind": "ev')
    assert S.read_final_evals(path) == {"val_domain": 5.9, "val_general": 5.5}
    path.write_text('{"kind": "ev\n' + json.dumps(recs[0]) + "\n")
    with pytest.raises(S.SweepCheckError, match="line 1"):
        S.read_final_evals(path)


def test_params_from_shape_matches_the_trainer():
    from core.model_config import param_counts
    from train.config import load_config

    for path in (PROXY_CONFIG, CONFIRM_CONFIG):
        cfg = load_config(path, ["model.vocab_size=8192"])
        assert S.params_from_shape(S.train_shape(path)["model"], 8192) == param_counts(cfg.model)["total"]
    assert S.params_from_shape(S.train_shape(PROXY_CONFIG)["model"], 8192) < \
        S.params_from_shape(S.train_shape(CONFIRM_CONFIG)["model"], 8192)


@pytest.mark.parametrize("sweep, message", [
    ({"proxies": 2}, "sweep.proxies must be in"),
    ({"proxy": 8}, "unknown sweep keys ['proxy']"),
    ({"domain_shares": [0.2, 0.5]}, "must include 0.0"),
    ({"domain_shares": [0.0, 1.5]}, "domain_shares[] must be in"),
    ({"confirm_seeds": []}, "confirm_seeds"),
    ({"proxy_config": "configs/train/nope.yaml"}, "does not exist"),
])
def test_bad_sweep_config_is_one_error_line_exit_2(work, tmp_path, sweep, message):
    config = _run_config(work, tmp_path, sweep)
    proc = subprocess.run([sys.executable, "-m", "mixtures.sweep", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: sweep:") and message in lines[0], proc.stderr
    assert not (work / "sweep").exists()  # refused before any work


def test_run_config_validator_checks_the_sweep_block(work, tmp_path):
    from run.orchestrator import RunConfigError, load_run_config

    with pytest.raises(RunConfigError, match="must include 0.0"):
        load_run_config(_run_config(work, tmp_path, {"domain_shares": [0.2, 0.5]}), check_inputs=False)


def _results(built) -> dict:
    """A sweep.json as run_sweep writes it, from the fixture's real mixtures and losses of a known law."""
    mixtures, _, manifests = built
    names = sorted(mixtures[0]["weights"])
    sides = {"news_a": "domain", "news_b": "domain", "bbc": "general", "austen": "general"}
    d = np.array([m["domain_share_actual"] for m in manifests])
    p = np.array([S.realized(m, names) for m in manifests])
    losses = {"val_domain": 6.0 + 0.8 * np.exp(-3 * d), "val_general": 5.5 + 0.1 * np.exp(2 * d)}
    fit = S.fit_and_check(d, p, losses, np.arange(4), np.arange(4, 6))
    cands = [{"domain_share": float(x), "weights": mixtures[1]["weights"]} for x in np.linspace(0, 0.6, 61)]
    cd = np.array([c["domain_share"] for c in cands])
    pred = {s: S.predict(fit["chosen"], fit["params"][s], cd, None) for s in S.SPLITS}
    front = [{**cands[i], "pred": {s: float(pred[s][i]) for s in S.SPLITS}}
             for i in S.pareto_front(pred["val_domain"], pred["val_general"])]
    ref = float(losses["val_general"][d == 0].mean())
    ri = S.recommend(pred["val_domain"], pred["val_general"], ref, 0.05)
    runs = [{"arm": arm, "seed": seed, "domain_share": share, "final": {"val_domain": dl + 0.01 * seed,
                                                                        "val_general": 5.6 + 0.01 * seed}}
            for seed in (1, 2) for arm, share, dl in (("recommended", cands[ri]["domain_share"], 6.2),
                                                      ("51_49", 0.51, 6.3))]
    proxies = [{**m, "held_out": k >= 4, "loss": {s: float(losses[s][k]) for s in S.SPLITS}}
               for k, m in enumerate(mixtures)]
    assert all(sides[n] in S.SIDES for n in names)
    return {"run_config": "configs/runs/experiment.yaml", "date": "2026-12-08", "machine": "2-core", "wall_s": 600.0,
            "timing": {"proxies_s": 200.0, "confirm_s": 380.0}, "sweep": {"domain_shares": [0.0, 0.3, 0.6],
                                                                         "concentration": 20.0, "seed": 3},
            "general_tolerance": 0.05, "proxy": {"config": "configs/train/sweep_proxy.yaml", "params": 631_104,
                                                 "steps": 200, "batch_tokens": 1024, "target_tokens": 40_000},
            "held_out_docs": {"val_domain": 10, "val_general": 12},
            "max_share_error": {"domain": 0.001, "source": 0.002},
            "proxies": proxies, "sources": names, "fit": fit, "reference_general": ref, "front": front,
            "recommendation": {**cands[ri], "name": "recommended", "pred": {s: float(pred[s][ri]) for s in S.SPLITS}},
            "recipe_path": "work/x/sweep/recommended_recipe.yaml",
            "confirm": {"config": "configs/train/experiment.yaml", "params": 1_901_696, "steps": 400,
                        "batch_tokens": 2048, "budget_tokens": 819_200, "seeds": [1, 2]},
            "candidates": 61, "cost": {"sweep_flops": 1e12, "target_flops": 9e12, "fraction": 1 / 9},
            "confirmation": {"runs": runs, "verdict": S.confirmation_verdict(runs, 0.05)}}


def test_results_reach_the_doc_section_report_and_dataset_card(built, tmp_path):
    from run.dataset_card import _recipe_origin
    from run.report import build_html, load_run

    r = _results(built)
    text = S.section_markdown(r)
    assert "**Recommended**" in text and "beats 51/49" in text and r["fit"]["chosen"] in text
    assert "{" not in text and "configs/train/sweep_proxy.yaml" in text  # every field filled in
    work = tmp_path / "work"
    (work / "sweep").mkdir(parents=True)
    (work / "sweep" / "sweep.json").write_text(json.dumps(r))
    html = build_html(load_run(work))
    assert 'id="sweep"' in html and "Mixture search" in html and "The recommendation beats 51/49." in html
    rec = r["recommendation"]
    sides = {"news_a": "domain", "news_b": "domain", "bbc": "general", "austen": "general"}
    manifest = {"domain_share_target": rec["domain_share"],
                "sources": {n: {"weight": w, "domain": sides[n]} for n, w in rec["weights"].items()}}
    card = "\n".join(_recipe_origin(work, manifest))
    assert "From the mixture search" in card and "beats" in card
    card = "\n".join(_recipe_origin(work, {**manifest, "domain_share_target": 0.51}))
    assert "does not use it" in card and "From the mixture search" not in card


def test_docs_only_needs_results(work, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mixtures.sweep", "--config", str(_run_config(work, tmp_path)),
                           "--docs-only"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error: sweep: --docs-only: no ")


def test_sweep_imports_neither_train_nor_the_orchestrator():
    code = ("import sys, mixtures.sweep as s; s.sweep_figure; "
            "bad = [m for m in sys.modules if m == 'train' or m.startswith('train.') or m == 'run.orchestrator']; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
