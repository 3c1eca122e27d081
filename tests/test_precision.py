"""Number formats against torch's own, fp16 loss scaling through an overflow, fp8's refusal off fp8 GPUs and
its conversion, and QAT: its numerics equal the export's quantization, its phase starts where configured,
and a run resumed before or inside the phase ends where the uninterrupted run ends."""

import copy
import json
import math

import pytest
import torch
import torch.distributed as dist

from tests.bytemix import build_byte_mixture
from tests.conftest import DATA, ROOT
from train import precision
from train.config import ConfigError, load_config
from train.model import ModelConfig, Transformer
from train.trainer import train

TINY = ROOT / "configs" / "train" / "tiny.yaml"
SMALL = ModelConfig(vocab_size=256, seq_len=32, n_layer=2, n_head=4, d_model=64)


@pytest.mark.parametrize("name,dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16),
                                        ("fp8-e4m3", torch.float8_e4m3fn), ("fp8-e5m2", torch.float8_e5m2)])
def test_float_formats_match_torch_finfo(name, dtype):
    f, info = precision.FLOAT_FORMATS[name], torch.finfo(dtype)
    assert f.bits == info.bits
    assert (f.max, f.min_normal, f.epsilon) == (info.max, info.smallest_normal, info.eps)
    # the smallest subnormal is representable and half of it rounds to zero
    assert torch.tensor(f.min_subnormal).to(dtype).float().item() == f.min_subnormal
    assert torch.tensor(f.min_subnormal / 2.1).to(dtype).float().item() == 0.0


def test_the_layouts_of_the_notes():
    fp32, fp16, bf16 = (precision.FLOAT_FORMATS[k] for k in ("fp32", "fp16", "bf16"))
    assert [(f.exponent, f.mantissa) for f in (fp32, fp16, bf16)] == [(8, 23), (5, 10), (8, 7)]
    assert fp16.max == 65504 and bf16.max == pytest.approx(3.39e38, rel=1e-3)  # bf16 keeps fp32's range
    assert precision.FLOAT_FORMATS["fp8-e4m3"].max == 448 and precision.FLOAT_FORMATS["fp8-e5m2"].max == 57344
    assert round(bf16.decimal_digits, 2) == 2.41 and round(fp16.decimal_digits, 2) == 3.31
    assert [(i.qmin, i.qmax, i.levels) for i in precision.INT_FORMATS.values()] == [(-128, 127, 256), (-8, 7, 16)]


def test_qat_settings_reject_what_cannot_train():
    s = precision.QATSettings.from_config({"start_fraction": 0.75})
    assert (s.scheme, s.group_size, s.start_step(100), s.export_dtype) == ("8da4w", 32, 75, "8da4w")
    assert precision.QATSettings.from_config({"scheme": "4w"}).export_dtype == "int4"
    for bad, message in (({"start": 0.8}, "unknown train.qat keys"), ({"scheme": "int2"}, "scheme"),
                         ({"start_fraction": 1.0}, "start_fraction"), ({"group_size": 0}, "group_size"),
                         ("0.8", "mapping")):
        with pytest.raises(ValueError, match=message):
            precision.QATSettings.from_config(bad)


@pytest.fixture
def process_group():
    """A 1-rank gloo group (the sharded scaler all-reduces its overflow flag), gone after the test."""
    from train.parallel import init_distributed

    init_distributed("cpu")
    yield
    dist.destroy_process_group()


def test_loss_scaler_skips_an_overflow_step_halves_the_scale_and_training_goes_on(process_group):
    assert precision.loss_scaler("bf16", "cpu") is None and precision.loss_scaler("fp32", "cpu") is None
    torch.manual_seed(0)
    model = Transformer(SMALL)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scaler = precision.loss_scaler("fp16", "cpu", init_scale=2.0**12)
    x = torch.randint(0, SMALL.vocab_size, (4, SMALL.seq_len + 1))

    def step(overflow: bool = False) -> float:
        with torch.autocast("cpu", dtype=torch.float16):
            loss = model(x[:, :-1], x[:, 1:])
        scaler.scale(loss).backward()
        if overflow:  # what an fp16 gradient beyond 65504 becomes
            model.layers["0"].feed_forward.w2.weight.grad[0, 0] = float("inf")
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    before = copy.deepcopy(model.state_dict())
    first = step(overflow=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the step was skipped
    assert scaler.get_scale() == 2.0**11  # and the scale halved
    losses = [step() for _ in range(6)]
    assert not torch.equal(before["layers.0.feed_forward.w2.weight"], model.layers["0"].feed_forward.w2.weight)
    assert scaler.get_scale() == 2.0**11  # no new overflow
    assert losses[0] == pytest.approx(first) and losses[-1] < first - 0.05  # same weights, then learning


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    out = tmp_path_factory.mktemp("precision") / "mix"
    build_byte_mixture(out, [f"{DATA}/finance/reuters_finance.jsonl.gz"], [f"{DATA}/general/austen.jsonl.gz"],
                       max_bytes=60_000)
    return out


def run(mix, out, *over):
    """The tiny model on the byte mixture, one process (FSDP2 over a 1-rank group), one record per step."""
    summary = train(load_config(TINY, [f"data.dir={mix}", f"train.out_dir={out}", "train.log_every=1",
                                       "train.global_batch_tokens=512", "train.micro_batch=4",
                                       "train.eval_tokens=1024", "train.progress=false", "train.tensorboard=false",
                                       *over]))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return summary, records


def test_trainer_fp16_recovers_from_overflow_steps(mix, tmp_path):
    # 2^20 is too large a scale for this model's fp16 gradients: the first steps overflow
    _, records = run(mix, tmp_path / "run", "train.steps=12", "train.dtype=fp16", "train.loss_scale=1048576")
    steps = [r for r in records if r["kind"] == "train"]
    assert steps[0]["overflow_steps"] == 1 and steps[0]["loss_scale"] == 2.0**19 and not math.isfinite(
        steps[0]["grad_norm"])
    settled = steps[-1]["overflow_steps"]
    assert 1 <= settled <= 4 and all(r["overflow_steps"] == settled for r in steps[-6:])
    assert all(math.isfinite(r["grad_norm"]) for r in steps[-6:])
    assert steps[-1]["loss_scale"] == 2.0 ** (20 - settled) and steps[-1]["loss"] < steps[0]["loss"] - 0.5
    start = next(r for r in records if r["kind"] == "start")
    assert start["dtype"] == "torch.float16"


def test_fp8_is_refused_off_fp8_gpus_with_one_clear_error(mix, tmp_path):
    with pytest.raises(ConfigError, match=r"train.dtype=fp8 needs a CUDA GPU with fp8 tensor cores .* on cpu"):
        run(mix, tmp_path / "run", "train.steps=1", "train.dtype=fp8")
    with pytest.raises(ConfigError, match="train.dtype must be one of"):
        run(mix, tmp_path / "run", "train.steps=1", "train.dtype=int8")


def test_fp8_conversion_swaps_the_block_linears_and_keeps_the_head():
    """What train.dtype=fp8 does to the model on a GPU, run here through torch's CPU emulation of the fp8
    matmul: every block linear becomes a Float8Linear, the head stays, and the loss stays close."""
    from torchao.float8.float8_linear import Float8Linear

    torch.manual_seed(0)
    ref = Transformer(SMALL)
    model = copy.deepcopy(ref)
    names = precision.apply_float8_training(model)
    assert len(names) == 4 * SMALL.n_layer and all(n.startswith("layers.") for n in names)
    assert all(isinstance(model.get_submodule(n), Float8Linear) for n in names)
    assert type(model.output) is torch.nn.Linear and type(model.tok_embeddings) is torch.nn.Embedding
    x = torch.randint(0, SMALL.vocab_size, (4, SMALL.seq_len + 1))
    loss = model(x[:, :-1], x[:, 1:])
    loss.backward()
    assert loss.item() == pytest.approx(ref(x[:, :-1], x[:, 1:]).item(), rel=0.01)
    assert model.layers["0"].attention.wo.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("scheme", ["4w", "8da4w"])
def test_qat_fake_quantization_is_exactly_the_exports_quantization(scheme):
    """In the QAT phase the blocks compute with the numerics the export will have: the fake-quantized model's
    logits equal those of the same weights quantized by torchao's post-training configs."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig, PerGroup, quantize_

    torch.manual_seed(0)
    ref = Transformer(SMALL).eval()
    qat = copy.deepcopy(ref)
    names = precision.prepare_qat(qat, precision.QATSettings(scheme=scheme))
    assert len(names) == 4 * SMALL.n_layer and set(qat.state_dict()) == set(ref.state_dict())
    x = torch.randint(0, SMALL.vocab_size, (2, SMALL.seq_len))
    with torch.no_grad():
        assert torch.equal(qat(x), ref(x))  # prepared but off: the model is unchanged
        assert precision.set_fake_quant(qat, True) == 4 * SMALL.n_layer
        fake = qat(x)
    ptq = copy.deepcopy(ref)
    config = IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)) if scheme == "4w" else \
        Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(32))
    quantize_(ptq.layers, config)
    with torch.no_grad():
        torch.testing.assert_close(fake, ptq(x), rtol=1e-5, atol=1e-5)
        assert (fake - ref(x)).abs().max() > 1e-3  # and the rounding is really there
    with pytest.raises(ValueError, match="group_size=48 does not divide"):
        precision.prepare_qat(copy.deepcopy(ref), precision.QATSettings(group_size=48))


def test_qat_phase_and_fp16_scaler_survive_a_resume_exactly(mix, tmp_path):
    """fp16 + QAT from step 3 of 6, checkpoints every 2 steps: resumed from step 2 (before the phase) and from
    step 4 (inside it), each run ends with the uninterrupted run's loss, evaluation and loss scale."""
    over = ["train.steps=6", "train.dtype=fp16", "train.ckpt_every=2", "train.keep_checkpoints=0",
            "train.qat={start_fraction: 0.5}", "optim.warmup_steps=2"]
    full, records = run(mix, tmp_path / "full", *over)
    assert [r for r in records if r["kind"] == "qat"] == [{"kind": "qat", "step": 3, "scheme": "8da4w",
                                                          "start_fraction": 0.5, "group_size": 32}]
    assert [r["qat"] for r in records if r["kind"] == "train"] == [False] * 3 + [True] * 3
    meta = json.loads((tmp_path / "full" / "checkpoints" / "step_00000004" / "meta.json").read_text())
    assert meta["qat"]["start_step"] == 3 and meta["loss_scaler"]["scale"] == full["last_train"]["loss_scale"]
    for resume_at in (2, 4):
        ckpt = tmp_path / "full" / "checkpoints" / f"step_{resume_at:08d}"
        resumed, again = run(mix, tmp_path / f"resumed_{resume_at}", *over, f"train.resume={ckpt}")
        assert next(r for r in again if r["kind"] == "start")["start_step"] == resume_at
        assert resumed["last_train"]["loss"] == full["last_train"]["loss"]
        assert resumed["last_train"]["loss_scale"] == full["last_train"]["loss_scale"]
        assert {s: r["loss"] for s, r in resumed["eval"].items()} == {s: r["loss"] for s, r in full["eval"].items()}


def test_torchao_kernel_load_failures_are_quiet_other_warnings_are_not():
    """`import torchao` logs `Failed to load .../torchao/_C_mxfp8...so` for kernels this project never uses (CUDA
    builds for another Python); importing train.precision first drops exactly those lines of the torchao logger."""
    import logging
    import subprocess
    import sys

    record = logging.LogRecord("torchao", logging.WARNING, __file__, 1, "Failed to load %s: %s", (
        "/venv/lib/python3.11/site-packages/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so",
        "Could not load this library"), None)
    other = logging.LogRecord("torchao", logging.WARNING, __file__, 1, "Failed to load config.json", (), None)
    logger = logging.getLogger("torchao")
    assert not logger.filter(record) and logger.filter(other)
    code = ("import logging, train.precision, torchao\n"
            "logging.getLogger('torchao').warning('an unrelated torchao warning')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Failed to load" not in proc.stderr and "an unrelated torchao warning" in proc.stderr


# ----------------------------------------------------------------------------- one vocabulary of number formats

def _choices(parser, flag: str) -> list[str]:
    return next(a.choices for a in parser._actions if flag in a.option_strings)


def test_every_consumer_takes_its_names_from_the_one_table():
    """train.dtype, ``train.plan --precision`` and ``train.export --dtype`` accept the names of train/precision.py
    ``FORMATS`` that apply to them, then their aliases, and nothing else; every spelling names one format."""
    from train import config, export, plan

    assert list(config.DTYPES) == precision.names("train") == [
        "auto", "fp32", "bf16", "fp16", "fp8", "float32", "bf16-mixed", "bfloat16", "fp16-mixed", "float16"]
    assert _choices(plan.build_parser(), "--precision") == precision.names("plan")
    assert _choices(export.build_parser(), "--dtype") == precision.names("export")
    assert set(precision.names("plan")) - set(precision.names("train")) == {"bf16-pure", "int8", "int4"}
    assert set(precision.names("export")) - set(precision.names("plan")) == {"8da4w"}
    spelled = [n for f in precision.FORMATS.values() for n in (f.name, *f.aliases)]
    assert len(spelled) == len(set(spelled)) and precision.AUTO not in spelled
    assert [precision.trainer_format("auto", d).name for d in ("cuda", "cpu")] == ["bf16", "fp32"]
    fmts = precision.FORMATS.values()
    what_ifs = [f.name for f in fmts if f.training and not f.trainable]  # planned, not trained: marked as such
    assert what_ifs == [f.name for f in fmts if f.what_if] == ["bf16-pure"]
    assert precision.resolve("bf16-pure").runs_as == "bf16"
    for gone in ((plan, "PRECISIONS"), (plan, "TRAINER_DTYPES"), (plan, "TRAINING_FORMATS"), (export, "DTYPES"),
                 (export, "EXPORT_DTYPES"), (precision, "EXPORT_FORMATS"), (precision, "WEIGHT_FORMATS")):
        assert not hasattr(*gone), gone  # one table, no second vocabulary beside it
    with pytest.raises(ValueError, match="not a number format export accepts"):
        precision.format_for("export", "fp8")  # the trainer's fp8 has no weights format of its own


@pytest.mark.parametrize("alias", [a for f in precision.FORMATS.values() for a in f.aliases])
def test_an_alias_means_its_format_in_every_consumer(alias, capsys):
    """bf16-mixed = bf16 = bfloat16: the same trainer dtype, the same plan (every byte of its JSON but the name
    as typed), the same export dtype and card line."""
    from train import plan

    f = precision.resolve(alias)
    assert alias in f.aliases and f.trainable and f.used_by("plan") and f.used_by("export")
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[f.name]
    assert precision.trainer_format(alias, "cpu") is f  # what the trainer's build_model computes in
    assert (getattr(torch, f.param_dtype) if f.param_dtype else torch.float32) == torch_dtype
    assert (precision.loss_scaler(alias, "cpu") is not None) == (f.name == "fp16")
    plans = []
    for name in (alias, f.name):
        assert plan.main(["--params", "1e9", "--precision", name, "--json"]) == 0
        plans.append(capsys.readouterr().out)
    assert plans[0] == plans[1] and f'"name": "{f.name}"' in plans[0]
    row = plan.memory_per_gpu(plan.infer_shape(1e9), strategy="ddp", n_gpus=1, precision=alias)
    assert plan.trainer_settings(row, alias)["train.dtype"] == f.runs_as == f.name
    assert precision.format_label(alias) == precision.format_label(f.name) == f.name
    assert getattr(torch, precision.format_for("export", alias).export_dtype) == torch_dtype


def test_the_run_config_checks_export_dtype_against_the_table(tmp_path, monkeypatch):
    """configs/runs/demo.yaml with export.dtype an alias is valid; with a name no export takes, the one problem
    lists what ``train.export --dtype`` takes."""
    import yaml

    from run import orchestrator as run

    monkeypatch.chdir(ROOT)  # the run config's paths are relative to the repository
    doc = yaml.safe_load((ROOT / "configs" / "runs" / "demo.yaml").read_text(encoding="utf-8"))
    doc["work_dir"] = str(tmp_path / "work")
    for dtype, problem in (("bf16-mixed", None), ("fp8", "export.dtype must be one of")):
        doc["export"] = {**(doc.get("export") or {}), "dtype": dtype}
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        if problem is None:
            assert run.load_run_config(tmp_path / "run.yaml", check_inputs=False).stage("export")["dtype"] == dtype
            continue
        with pytest.raises(run.RunConfigError) as exc:
            run.load_run_config(tmp_path / "run.yaml", check_inputs=False)
        assert str(exc.value).count("\n") == 0 and problem in str(exc.value)
        assert str(precision.names("export")) in str(exc.value) and "'fp8'" in str(exc.value)
