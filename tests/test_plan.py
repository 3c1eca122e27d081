"""The planner's formulas against hand-computed and published numbers, and its CLI verdicts."""

import json
import math
import re

import pytest

from train import plan
from train.gpus import GB, GIB, GPUS, get_gpu

BLOOMBERG = dict(n_layer=70, d_model=7680, n_head=40, vocab_size=131072)  # Wu et al. 2023, Table 2


def _shape(**kw):
    base = dict(n_params=1e9, n_layer=24, d_model=2048, n_head=16, n_kv_head=16, vocab_size=32000,
                seq_len=2048, non_embedding=1e9 - 32000 * 2048, source="test")
    base.update(kw)
    return plan.ModelShape(**base)


def test_fp32_adam_is_16_bytes_per_param_and_24_with_activation_allowance():
    states = plan.model_state_bytes(1e9, "fp32", "adam")
    assert states == {"weights": 4e9, "gradients": 4e9, "optimizer": 8e9}  # 4 + 4 + (4 m + 4 v)
    rot = plan.rule_of_thumb(1e9)
    assert (rot["store"], rot["states"], rot["train"]) == (4e9, 16e9, 24e9)  # 1B: 4 GB store, ~24 GB train
    row = plan.memory_per_gpu(_shape(), strategy="ddp", n_gpus=1, precision="fp32")
    assert row.weights + row.gradients + row.optimizer == 16e9
    assert row.gathered == 0 and row.cpu_per_gpu == 0


@pytest.mark.parametrize("precision,optimizer,expected", [
    ("bf16-mixed", "adam", (2, 2, 12)),     # ZeRO's K = 12: fp32 master + m + v
    ("bf16-pure", "adam", (2, 2, 4)),       # bf16 moments, no master copy (a what-if)
    ("bf16-mixed", "adam8bit", (2, 2, 6)),  # fp32 master + 1 B m + 1 B v
    ("fp32", "adam8bit", (4, 4, 2)),
])
def test_bytes_per_param_by_precision(precision, optimizer, expected):
    s = plan.model_state_bytes(1.0, precision, optimizer)
    assert (s["weights"], s["gradients"], s["optimizer"]) == expected


def test_zero_paper_per_gpu_numbers_7p5b_on_64_gpus():
    # Rajbhandari et al. 2020, Fig. 1: Psi = 7.5B, N_d = 64, K = 12 -> 120, 31.4, 16.6, 1.9 GB.
    states = plan.model_state_bytes(7.5e9, "bf16-mixed", "adam")
    got = {}
    for strategy in ("ddp", "zero1", "zero2", "fsdp"):
        per_gpu, cpu = plan.sharded_state_bytes(states, strategy, 1 if strategy == "ddp" else 64)
        got[strategy] = sum(per_gpu.values())
        assert cpu == 0
    assert got["ddp"] == 120e9                                    # (2 + 2 + 12) * 7.5e9
    assert got["zero1"] == pytest.approx(2 * 7.5e9 + 2 * 7.5e9 + 12 * 7.5e9 / 64)  # 31.40625 GB
    assert got["zero2"] == pytest.approx(2 * 7.5e9 + 14 * 7.5e9 / 64)             # 16.640625 GB
    assert got["fsdp"] == pytest.approx(16 * 7.5e9 / 64)                          # 1.875 GB
    assert [round(got[k] / GB, 1) for k in ("ddp", "zero1", "zero2", "fsdp")] == [120.0, 31.4, 16.6, 1.9]


def test_hsdp_sharding_factor_one_is_ddp_and_full_is_fsdp():
    shape = _shape(n_params=7.5e9)
    ddp = plan.memory_per_gpu(shape, strategy="ddp", n_gpus=64)
    h1 = plan.memory_per_gpu(shape, strategy="hsdp", n_gpus=64, sharding_factor=1)
    h8 = plan.memory_per_gpu(shape, strategy="hsdp", n_gpus=64, sharding_factor=8)
    full = plan.memory_per_gpu(shape, strategy="fsdp", n_gpus=64)
    h64 = plan.memory_per_gpu(shape, strategy="hsdp", n_gpus=64, sharding_factor=64)
    states = lambda r: r.weights + r.gradients + r.optimizer  # noqa: E731
    assert states(h1) == states(ddp) == 120e9
    assert states(h8) == 120e9 / 8
    assert states(h64) == states(full) == 120e9 / 64
    with pytest.raises(ValueError, match="does not divide"):
        plan.memory_per_gpu(shape, strategy="hsdp", n_gpus=64, sharding_factor=48)


def test_cpu_offload_moves_states_to_host():
    states = plan.model_state_bytes(8e9, "bf16-mixed")  # 16e9, 16e9, 96e9 bytes
    gpu, cpu = plan.sharded_state_bytes(states, "fsdp", 8, offload=True)
    assert sum(gpu.values()) == 0 and cpu == 128e9 / 8
    gpu, cpu = plan.sharded_state_bytes(states, "zero2", 8, offload=True)  # ZeRO-Offload keeps fp16 params
    assert gpu == {"weights": 16e9, "gradients": 0.0, "optimizer": 0.0} and cpu == (16e9 + 96e9) / 8
    with pytest.raises(ValueError):
        plan.sharded_state_bytes(states, "ddp", 1, offload=True)


def test_korthikanti_activation_formula_by_hand():
    # s=2048, b=1, h=4096, a=32: s*b*h = 8,388,608; 34 + 5*32*2048/4096 = 114 -> 956,301,312 bytes per layer.
    assert plan.activation_bytes_per_layer(2048, 1, 4096, 32) == 956_301_312
    assert plan.activation_bytes_per_layer(2048, 1, 4096, 32, flash=True) == 34 * 8_388_608
    assert plan.activation_bytes_per_layer(2048, 4, 4096, 32, act_scale=2.0) == 8 * 956_301_312  # fp32, b=4
    shape = _shape(n_layer=2, d_model=4096, n_head=32, vocab_size=1000, seq_len=2048)
    logits = 4 * 2048 * 1000
    assert plan.activation_bytes(shape, 1) == 2 * 956_301_312 + logits
    # full recomputation: 2sbh per layer kept + one layer rematerialised + logits
    assert plan.activation_bytes(shape, 1, checkpointing=True) == 2 * 2 * 8_388_608 + 956_301_312 + logits


@pytest.mark.parametrize("mode", ["bf16", "fp32", "autocast"])
def test_trainer_activation_formula_matches_the_trainers_saved_tensors(mode):
    from train.activations import saved_for_backward_bytes
    from train.model import ModelConfig, param_counts

    kw = dict(vocab_size=256, seq_len=64, n_head=4, d_model=128, ffn_hidden=384)
    b = 2
    one, three = (saved_for_backward_bytes(ModelConfig(n_layer=n, **kw), b, mode) for n in (1, 3))
    per_h, per_f = plan.TRAINER_ACT_BYTES[mode]
    per_layer = 64 * b * (per_h * 128 + per_f * 384)
    measured = (three - one) / 2
    if mode == "autocast":  # minus the per-layer bf16 weight copies autocast caches
        cfg3, cfg1 = ModelConfig(n_layer=3, **kw), ModelConfig(n_layer=1, **kw)
        measured -= (param_counts(cfg3)["non_embedding"] - param_counts(cfg1)["non_embedding"])
    assert measured == pytest.approx(per_layer, rel=0.02)
    precision, strategy = {"bf16": ("bf16-mixed", "fsdp"), "fp32": ("fp32", "fsdp"),
                           "autocast": ("bf16-mixed", "ddp")}[mode]
    cfg = ModelConfig(n_layer=3, **kw)
    counts = param_counts(cfg)
    shape = plan.ModelShape(counts["total"], 3, 128, 4, 4, 256, 64, counts["non_embedding"], "t", 384)
    path = plan.trainer_activation_path(precision, strategy)
    assert path == mode
    total = plan.activation_bytes(shape, b, activations="trainer", path=path)
    assert total == pytest.approx(three, rel=0.10)  # + logits; the final norm is left out


def test_activation_checkpointing_saves_most_activation_memory_at_scale():
    shape = plan.infer_shape(7e9, seq_len=4096)
    full = plan.activation_bytes(shape, 1)
    ckpt = plan.activation_bytes(shape, 1, checkpointing=True)
    assert ckpt < full / 10


def test_chinchilla_70b_compute():
    flops = plan.training_flops(70e9, 1.4e12)
    assert flops == pytest.approx(5.88e23)                      # ~5.9e23 FLOPs (paper: 5.76e23)
    assert plan.pfs_days(flops) == pytest.approx(5.88e23 / 8.64e19)
    assert round(plan.pfs_days(flops), -2) == 6800              # ~6.8e3 petaflop/s-days
    assert plan.chinchilla_tokens(70e9) == 1.4e12


def test_inverse_budget_gives_n_and_d_that_spend_it():
    n, d = plan.compute_optimal(5.88e23)
    assert n == pytest.approx(70e9) and d == pytest.approx(1.4e12)
    n, d = plan.compute_optimal(6 * 1e9 * 1e11, tokens_per_param=100)  # D = 100 N
    assert n == pytest.approx(1e9) and d == pytest.approx(1e11)


def test_time_and_gpu_hours_by_hand():
    # 1e21 FLOPs on 8 GPUs of 1e15 FLOP/s at 50%: 2e6 GPU-seconds = 555.6 GPU-hours = 2.894 days.
    assert plan.gpu_hours(1e21, 1e15, 0.5) == pytest.approx(2e6 / 3600)
    assert plan.wall_clock_days(1e21, 1e15, 0.5, 8) == pytest.approx(2e6 / 8 / 86400)
    assert plan.domain_split(1000.0) == {"domain": 510.0, "general": 490.0}


def test_llama65b_published_gpu_hours_from_its_throughput():
    # Touvron et al. 2023: 65.2B, 1.4T tokens, 380 tokens/s/GPU on A100-80GB, 1,022,362 GPU-hours.
    n, d = 65.2e9, 1.4e12
    mfu = 6 * n * 380 / GPUS["a100-80gb"].peak("bf16")
    hours = plan.gpu_hours(plan.training_flops(n, d), GPUS["a100-80gb"].peak("bf16"), mfu)
    assert hours == pytest.approx(1_022_362, rel=0.01)
    assert plan.wall_clock_days(plan.training_flops(n, d), 312e12, mfu, 2048) == pytest.approx(21, rel=0.05)


def test_gpu_table_units():
    a100 = get_gpu("a100-40gb")
    assert a100.memory_bytes == 40 * GIB and a100.memory_bytes / GB == pytest.approx(42.95, abs=0.01)
    assert a100.peak("bf16") == 312e12 and get_gpu("H100").name == "h100-80gb"
    with pytest.raises(ValueError, match="no fp8"):
        a100.peak("fp8")
    custom = get_gpu("custom", memory_gb=24, tflops=100)
    assert custom.memory_bytes == 24e9 and custom.peak("bf16") == 100e12
    with pytest.raises(ValueError):
        get_gpu("custom")


def test_infer_shape_matches_published_shapes_roughly():
    gpt3 = plan.infer_shape(175e9, vocab_size=50257)     # published: 96 layers, 12288
    assert 90 <= gpt3.n_layer <= 100 and abs(gpt3.d_model - 12288) <= 512
    llama7 = plan.infer_shape(6.7e9)                     # published: 32 layers, 4096
    assert 30 <= llama7.n_layer <= 34 and llama7.d_model == 4096
    fixed = plan.infer_shape(50.6e9, **BLOOMBERG)
    assert (fixed.n_layer, fixed.d_model, fixed.n_head) == (70, 7680, 40)


def test_recommendation_prefers_ddp_when_it_fits_and_shards_when_it_must():
    small = plan.infer_shape(125e6, seq_len=1024)
    h100 = GPUS["h100-80gb"].memory_bytes * 0.9
    kw = dict(n_gpus=8, capacity=h100, micro_batch=4, precision="bf16-mixed", optimizer="adam",
              activations="korthikanti")
    rec = plan.recommend(small, **kw)
    got = (rec.strategy, rec.activation_checkpointing, rec.cpu_offload, rec.micro_batch)
    assert got == ("ddp", False, False, 4)
    big = plan.infer_shape(13e9, seq_len=2048)           # 208 GB of states: DDP cannot fit on 80 GB
    rec = plan.recommend(big, **{**kw, "micro_batch": 1})
    assert rec.strategy in ("hsdp", "fsdp") and not rec.cpu_offload and rec.fits
    assert rec.total <= h100
    ddp = plan.memory_per_gpu(big, strategy="ddp", n_gpus=8, checkpointing=True, capacity=h100)
    assert not ddp.fits


def test_nothing_fits_returns_none_and_offload_is_last_resort():
    huge = plan.infer_shape(1e12)
    assert plan.recommend(huge, n_gpus=1, capacity=16e9, micro_batch=1, precision="bf16-mixed",
                          optimizer="adam", activations="korthikanti-flash") is None
    # 20B on 2 x 38 GB: 160 GB of states halved is still too much, so only offloading them fits
    mid = plan.infer_shape(20e9, seq_len=512)
    rec = plan.recommend(mid, n_gpus=2, capacity=38e9, micro_batch=1, precision="bf16-mixed",
                         optimizer="adam", activations="korthikanti-flash")
    assert rec is not None and rec.cpu_offload and rec.strategy in ("fsdp", "hsdp")


def test_settings_are_the_trainers_own_overrides_and_yaml():
    row = plan.memory_per_gpu(_shape(), strategy="hsdp", n_gpus=16, sharding_factor=8, checkpointing=True,
                              micro_batch=2)
    settings = plan.trainer_settings(row)
    assert plan.settings_overrides(settings) == (
        "train.strategy=hsdp train.sharding_factor=8 train.activation_checkpointing=true train.micro_batch=2 "
        "train.dtype=bf16")
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(plan.settings_yaml(settings)) == {"train": {
        "strategy": "hsdp", "sharding_factor": 8, "activation_checkpointing": True, "micro_batch": 2,
        "dtype": "bf16"}}
    assert plan.trainer_settings(row, "fp32")["train.dtype"] == "fp32"
    offload = plan.memory_per_gpu(_shape(), strategy="fsdp", n_gpus=16, cpu_offload=True)
    assert plan.trainer_settings(offload)["train.strategy"] == "cpu_offload"  # the trainer's spelling
    with pytest.raises(ValueError, match="no hsdp"):
        plan.trainer_settings(plan.memory_per_gpu(_shape(), strategy="hsdp", n_gpus=16, sharding_factor=8,
                                                  cpu_offload=True))


def test_the_trainer_accepts_every_recommended_setting():
    from train.config import apply_overrides, config_from_dict

    for kw, precision in ((dict(strategy="ddp", n_gpus=1), "fp32"),
                          (dict(strategy="fsdp", n_gpus=8, cpu_offload=True), "fp16-mixed"),
                          (dict(strategy="hsdp", n_gpus=64, sharding_factor=8, checkpointing=True), "fp8")):
        settings = plan.trainer_settings(plan.memory_per_gpu(_shape(), **kw), precision)
        cfg = config_from_dict(apply_overrides({}, plan.settings_overrides(settings).split()))
        assert cfg.train.strategy == settings["train.strategy"]
        assert cfg.train.sharding_factor == settings["train.sharding_factor"]
        assert cfg.train.activation_checkpointing == settings["train.activation_checkpointing"]
        assert cfg.train.micro_batch == settings["train.micro_batch"]
        assert cfg.train.dtype == {"fp32": "fp32", "fp16-mixed": "fp16", "fp8": "fp8"}[precision]
        from_yaml = yaml_load(plan.settings_yaml(settings))
        assert config_from_dict(from_yaml).train == cfg.train


def yaml_load(text):
    import yaml

    return yaml.safe_load(text)


def test_bloomberggpt_cli_ddp_does_not_fit_full_shard_does(capsys):
    assert plan.main(["--params", "50.6e9", "--gpu", "a100-40gb", "--gpus", "512"]) == 0
    text = capsys.readouterr().out
    assert "DDP does not fit" in text
    assert "Full sharding (FSDP / ZeRO-3) fits" in text
    assert "train.strategy=" in text and "train.activation_checkpointing=true" in text
    assert "train.cpu_offload" not in text  # the trainer spells offload as a strategy


def test_bloomberggpt_wall_clock_within_2x_of_reported_53_days(capsys):
    # Wu et al. 2023: 569B tokens, 512 A100-40GB, ~53 days, 102 TFLOP/s per GPU with activation
    # recomputation (8ND hardware FLOPs), i.e. 102 * 6/8 = 76.5 TFLOP/s of model FLOPs = 24.5% MFU.
    mfu = 102e12 * 6 / 8 / 312e12
    args = ["--params", "50.6e9", "--gpu", "a100-40gb", "--gpus", "512", "--tokens", "569e9",
            "--mfu", str(mfu), "--json"]
    for flag, value in zip(("--n-layer", "--d-model", "--n-head", "--vocab-size"), BLOOMBERG.values()):
        args += [flag, str(value)]
    assert plan.main(args) == 0
    p = json.loads(capsys.readouterr().out)
    days = p["compute"]["wall_clock_days"]
    assert days == pytest.approx(6 * 50.6e9 * 569e9 / (512 * 312e12 * mfu) / 86400)  # 51.1 days
    assert 53 / 2 <= days <= 53 * 2
    assert p["compute"]["pfs_days"] == pytest.approx(6 * 50.6e9 * 569e9 / 8.64e19)
    fits = {(r["strategy"], r["activation_checkpointing"]): r["fits"] for r in p["memory"]["rows"]
            if not r["cpu_offload"]}
    assert fits[("ddp", False)] is False and fits[("ddp", True)] is False
    assert fits[("fsdp", True)] is True
    assert p["recommendation"]["strategy"] in ("fsdp", "hsdp") and not p["recommendation"]["cpu_offload"]
    # the default assumed 40% MFU on the Chinchilla-optimal 1.01T tokens is also within 2x of 53 days
    assert plan.main(["--params", "50.6e9", "--gpu", "a100-40gb", "--gpus", "512", "--json"]) == 0
    assert 53 / 2 <= json.loads(capsys.readouterr().out)["compute"]["wall_clock_days"] <= 53 * 2


def test_inverse_cli_gpu_hours(capsys):
    # 1.3M A100 GPU-hours (BloombergGPT's budget) at 24.5% MFU -> ~3.6e23 FLOPs -> N ~ 55B, D ~ 1.1T
    assert plan.main(["--gpu-hours", "1.3e6", "--gpu", "a100-40gb", "--gpus", "512", "--mfu", "0.245",
                      "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    flops = 1.3e6 * 3600 * 312e12 * 0.245
    assert p["budget"]["flops"] == pytest.approx(flops)
    assert p["model"]["n_params"] == pytest.approx(math.sqrt(flops / 120))
    assert p["data"]["tokens"] == pytest.approx(20 * math.sqrt(flops / 120))
    assert plan.main(["--budget-pfs-days", "6805.6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["n_params"] == pytest.approx(70e9, rel=1e-4)


def test_bad_flags_exit_with_one_line(capsys):
    for argv, message in ((["--params", "1e9", "--gpu", "custom"], "needs --gpu-mem-gb"),
                          (["--params", "1e9", "--gpu", "a100-40gb", "--compute-dtype", "fp8"], "no fp8 peak")):
        with pytest.raises(SystemExit) as exc:
            plan.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith("error: train.plan: ") and message in err
    assert plan.main(["--params", "1e9", "--gpu", "custom", "--gpu-mem-gb", "24", "--gpu-tflops", "165",
                      "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["gpu"]["memory_bytes"] == 24e9 and p["compute"]["peak_flops_per_gpu"] == 165e12


def test_inference_int4_needs_fewer_gpus(capsys):
    results = {}
    for precision in ("int4", "int8"):
        assert plan.main(["--params", "60e9", "--precision", precision, "--gpu", "a100-40gb", "--json"]) == 0
        p = json.loads(capsys.readouterr().out)
        m, inf = p["model"], p["inference"]
        kv = 2 * m["n_layer"] * m["seq_len"] * 1 * m["d_model"] * 2  # K and V, bf16, batch 1, no GQA
        assert inf["kv_cache"] == kv
        assert inf["weights"] == 60e9 * {"int4": 0.5, "int8": 1.0}[precision]
        # one 16-bit scale per 32 weights (int4), per row of d_model weights (int8)
        assert inf["scales"] == pytest.approx(60e9 / {"int4": 32, "int8": m["d_model"]}[precision] * 2)
        total = inf["weights"] + inf["scales"] + kv
        assert inf["total"] == pytest.approx(total)
        assert inf["min_gpus"] == math.ceil(total / p["cluster"]["usable_bytes_per_gpu"])
        results[precision] = inf["min_gpus"]
    assert results == {"int4": 1, "int8": 2}


def test_formats_table_inference_figures_by_hand(capsys):
    """1B parameters, 24 layers x 2048, 16 heads of 128 (no GQA), batch 2 x 4096 tokens of context."""
    assert plan.main(["--params", "1e9", "--n-layer", "24", "--d-model", "2048", "--n-head", "16",
                      "--batch", "2", "--context", "4096", "--gpu", "h100-80gb", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    rows = {r["format"]: r for r in p["formats"]["inference"]}
    assert list(rows) == ["fp32", "bf16", "fp16", "int8", "int4"]
    assert [rows[k]["weights"] for k in rows] == [4e9, 2e9, 2e9, 1e9, 0.5e9]  # 4 / 2 / 2 / 1 / 0.5 GB
    assert [rows[k]["bits"] for k in rows] == [32, 16, 16, 8, 4]
    kv16 = 2 * 24 * 4096 * 2 * 16 * 128 * 2  # K and V x layers x tokens x batch x heads x head_dim x 2 bytes
    assert kv16 == 1_610_612_736
    assert rows["fp32"]["kv_cache"] == 2 * kv16 and all(rows[k]["kv_cache"] == kv16 for k in ("bf16", "int4"))
    assert rows["int8"]["scales"] == 1e9 / 2048 * 2 and rows["int4"]["scales"] == 1e9 / 32 * 2  # 16-bit scales
    assert rows["int4"]["total"] == 0.5e9 + 62.5e6 + kv16
    train = {r["format"]: r for r in p["formats"]["training"]}
    assert list(train) == ["fp32", "bf16", "fp16", "fp8"]
    assert all(r["bytes_per_param"] == 16 and r["states"] == 16e9 for r in train.values())  # 4+4+8 and 2+2+12
    logits = 4 * 2048 * 1 * 32000  # fp32 log-probabilities of the loss, micro-batch 1, in every format
    assert train["fp32"]["activations"] - logits == pytest.approx(2 * (train["bf16"]["activations"] - logits))
    assert train["fp8"]["activations"] == train["bf16"]["activations"]  # torchao keeps bf16 inputs
    assert (train["bf16"]["peak_flops"], train["fp8"]["peak_flops"]) == (989.4e12, 1978.9e12)  # H100 SXM
    assert train["fp8"]["days"] == pytest.approx(train["bf16"]["days"] / 2, rel=1e-3)
    # the default 1B plan prints the table: 4 / 2 / 1 / 0.5 GB of weights next to the training figures
    assert plan.main(["--params", "1e9"]) == 0
    text = capsys.readouterr().out
    table = text.split("Number formats side by side")[1]
    assert "fp8 matmuls (torchao)" in table and "bf16 mixed (fp32 master)" in table
    weights = {line.split()[0]: line.split()[-4] for line in table.splitlines()
               if line.split() and line.split()[0] in ("fp32", "bf16", "fp16", "int8", "int4") and "GB" not in line
               and "(1+" not in line}
    assert weights == {"fp32": "4.00", "bf16": "2.00", "fp16": "2.00", "int8": "1.00", "int4": "0.50"}


def test_fp16_and_fp8_plans_name_the_trainers_dtype():
    row = plan.memory_per_gpu(_shape(), strategy="ddp", n_gpus=1)
    assert plan.trainer_settings(row, "fp16-mixed")["train.dtype"] == "fp16"
    assert plan.trainer_settings(row, "fp8")["train.dtype"] == "fp8"
    states = plan.model_state_bytes(1.0, "fp8")
    assert (states["weights"], states["gradients"], states["optimizer"]) == (2, 2, 12)


def test_mfu_from_trainer_log(tmp_path):
    log = tmp_path / "metrics.jsonl"
    lines = [{"step": i, "mfu": 0.05} for i in range(2)] + [{"step": i, "mfu": m} for i, m in
                                                             enumerate([0.30, 0.31, 0.33, 0.32, 0.35, 0.31,
                                                                        0.32, 0.34], 2)]
    log.write_text("\n".join(json.dumps(x) for x in lines + [{"eval_loss": 2.0}]) + "\n")
    assert plan.mfu_from_log(log, warmup_fraction=0.2) == pytest.approx(0.32)
    log.write_text(json.dumps({"mfu": 41.0}) + "\n")
    assert plan.mfu_from_log(log) == pytest.approx(0.41)


def test_model_config_uses_the_trainers_exact_param_count(tmp_path, capsys):
    from train.model import ModelConfig, param_counts

    cfg_path = tmp_path / "m.yaml"
    cfg_path.write_text("model:\n  vocab_size: 32000\n  seq_len: 1024\n  n_layer: 12\n  n_head: 12\n"
                        "  d_model: 768\ntrain:\n  micro_batch: 4\n")
    shape, train = plan.shape_from_config(cfg_path)
    exact = param_counts(ModelConfig.from_yaml(cfg_path))
    assert shape.n_params == exact["total"] and shape.non_embedding == exact["non_embedding"]
    assert (shape.n_layer, shape.d_model, shape.seq_len, train["micro_batch"]) == (12, 768, 1024, 4)
    assert shape.ffn_hidden == ModelConfig.from_yaml(cfg_path).ffn_hidden == 2048
    log = tmp_path / "metrics.jsonl"
    log.write_text("\n".join(json.dumps({"kind": "train", "mfu": 0.5}) for _ in range(5)) + "\n")
    assert plan.main(["--model-config", str(cfg_path), "--gpu", "h100-80gb", "--gpus", "8", "--json",
                      "--mfu-from", str(log)]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["model"]["n_params"] == exact["total"]
    assert p["compute"]["flops"] == 6 * exact["total"] * 20 * exact["total"]
    assert p["precision"]["activations"] == "trainer"
    # the trainer's MFU counts 6 N_non_embedding + 12 L d s + 6 V d (the head) FLOPs per token; the plan uses 6 N
    trainer_fpt = 6 * exact["non_embedding"] + 12 * 12 * 768 * 1024 + 6 * 32000 * 768
    assert p["compute"]["mfu"] == pytest.approx(0.5 * 6 * exact["total"] / trainer_fpt)
    assert p["recommendation"]["settings"]["train.micro_batch"] == 4
    assert p["recommendation"]["settings"]["train.strategy"] == "ddp"


def test_vocab_size_zero_reads_the_mixture_manifest(tmp_path):
    from train.model import ModelConfig, param_counts

    (tmp_path / "mix").mkdir()
    (tmp_path / "mix" / "manifest.json").write_text(json.dumps({"vocab_size": 4096}))
    cfg_path = tmp_path / "m.yaml"
    cfg_path.write_text(f"model:\n  vocab_size: 0\n  n_layer: 2\n  n_head: 4\n  d_model: 64\n"
                        f"data:\n  dir: {tmp_path / 'mix'}\n")
    shape, _ = plan.shape_from_config(cfg_path)
    expected = param_counts(ModelConfig(vocab_size=4096, n_layer=2, n_head=4, d_model=64))["total"]
    assert shape.vocab_size == 4096 and shape.n_params == expected and "manifest.json" in shape.source
    shape, _ = plan.shape_from_config(cfg_path, vocab_size=1000)
    assert shape.vocab_size == 1000


@pytest.mark.parametrize("name", ["tiny", "gpt125m", "llama1b"])
def test_the_trainers_configs_plan_without_error(name, capsys):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "configs" / "train" / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"{path} not written yet")
    assert plan.main(["--model-config", str(path), "--gpu", "h100-80gb", "--gpus", "8"]) == 0
    text = capsys.readouterr().out
    assert "Cheapest that fits" in text and "6ND" in text


def test_the_mixer_and_the_planner_size_runs_without_importing_torch():
    """mixtures/ must not pull torch in through train/: sizing a model config is arithmetic."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys\nfrom mixtures import mix, recipe\nfrom train import plan\n"
            "n, v = recipe.params_from_model_config('configs/train/gpt125m.yaml', 50304)\n"
            "assert n > 1e8 and recipe.chinchilla_tokens(n) == round(20 * n)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_formats_table_columns_never_run_together(capsys):
    """A tiny model's days (~1e-09) and a huge one's GB (1,122.4) stay separate cells: each row splits on runs of
    two spaces into exactly the header's cells (fixed widths once printed `67.01.27e-07`)."""
    for argv in (["--params", "1e5", "--gpus", "512"], ["--params", "50.6e9", "--gpu", "a100-40gb", "--gpus", "1"]):
        assert plan.main(argv) == 0
        table = capsys.readouterr().out.split("Number formats side by side")[1]
        for block in table.split("\n\n"):
            lines = [ln for ln in block.splitlines() if ln.strip()]
            head = next(i for i, ln in enumerate(lines) if ln.startswith("format"))
            n = len(re.split(r" {2,}", lines[head].strip()))
            rows = lines[head + 2:]
            assert rows and all(len(re.split(r" {2,}", r.strip())) == n for r in rows), (argv, rows)
            if n == 8:
                days = [re.split(r" {2,}", r.strip())[-1] for r in rows]
                assert all(d == "-" or float(d.replace(",", "")) > 0 for d in days), days


LLAMA2_7B = {"_name_or_path": "meta-llama/Llama-2-7b-hf", "architectures": ["LlamaForCausalLM"], "model_type": "llama",
             "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
             "hidden_act": "silu", "rope_theta": 10000.0, "rope_scaling": None, "tie_word_embeddings": False,
             "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16"}  # Llama-2-7b-hf's config.json


def test_continued_run_plans_the_base_with_the_given_tokens(tmp_path, capsys):
    """--init-from: N and shape from the base's config.json alone (no weights: the directory has none), the
    token budget as given (not 20 x N), 6ND, memory for the base's size, the days on 8 and on 1 H100."""
    (tmp_path / "Llama-2-7b-hf").mkdir()
    (tmp_path / "Llama-2-7b-hf" / "config.json").write_text(json.dumps(LLAMA2_7B))
    base = str(tmp_path / "Llama-2-7b-hf")
    n = 6_738_415_616  # Llama 2 7B's published parameter count (untied head)
    days = {}
    for gpus in (8, 1):
        assert plan.main(["--init-from", base, "--tokens", "2e10", "--gpu", "h100-80gb", "--gpus", str(gpus),
                          "--json"]) == 0
        p = json.loads(capsys.readouterr().out)
        assert p["model"]["n_params"] == n and (p["model"]["n_layer"], p["model"]["ffn_hidden"]) == (32, 11008)
        assert p["continued"]["name"] == "meta-llama/Llama-2-7b-hf" and p["continued"]["model_type"] == "llama"
        assert p["data"]["tokens"] == 2e10 and p["compute"]["flops"] == 6 * n * 2e10
        assert p["precision"]["activations"] == "trainer"
        ddp = next(r for r in p["memory"]["rows"] if r["strategy"] == "ddp" and not r["activation_checkpointing"])
        assert ddp["weights"] + ddp["gradients"] + ddp["optimizer"] == 16 * n  # bf16-mixed Adam, the base's size
        assert p["compute"]["wall_clock_days"] == pytest.approx(6 * n * 2e10 / (989.4e12 * 0.40) / gpus / 86400)
        days[gpus] = p["compute"]["wall_clock_days"]
        settings = p["recommendation"]["settings"]
        assert settings["train.strategy"] == ("hsdp" if gpus == 8 else "cpu_offload")  # 7B never fits DDP on 80 GB
    assert days[8] == pytest.approx(2.96, abs=0.01) and days[1] == pytest.approx(23.6, abs=0.1)
    assert plan.main(["--init-from", base, "--tokens", "2e10", "--gpu", "h100-80gb", "--gpus", "8"]) == 0
    text = capsys.readouterr().out
    assert "from base meta-llama/Llama-2-7b-hf" in text and "20.00B given, continued pretraining" in text
    assert "14.8% of the 134.77B tokens" in text and "general (replay) 49%" in text


def test_continued_run_bad_base_or_no_budget_is_one_line(tmp_path, capsys):
    (tmp_path / "moe").mkdir()
    (tmp_path / "moe" / "config.json").write_text(json.dumps({**LLAMA2_7B, "model_type": "mixtral"}))
    for argv, message in ((["--init-from", str(tmp_path / "missing"), "--tokens", "2e10"], "config.json not found"),
                          (["--init-from", str(tmp_path / "moe"), "--tokens", "2e10"], "unsupported: model_type"),
                          (["--init-from", str(tmp_path / "moe")], "give its token budget with --tokens"),
                          (["--init-from", str(tmp_path / "moe"), "--params", "1e9", "--tokens", "1e9"],
                           "not allowed with argument")):
        with pytest.raises(SystemExit) as exc:
            plan.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
