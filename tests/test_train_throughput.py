"""The throughput changes keep the model's function: MFU counts the head (by hand and by PyTorch's FLOP
counter), RoPE tables reach apply_rope in fp32 under FSDP, fused projections / fused loss / attention
kernels give the unfused model's numbers, world size 1 trains the same without FSDP, asynchronous
checkpoints hold the state of their step, and the GPU peak table knows the H200 NVL."""

import json
import shutil

import pytest
import torch
import torch.distributed as dist
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import train.model as M
from tests.test_train_export import TINY, byte_mixture, trained
from train import checkpoint as ckpt
from train.config import load_config
from train.gpus import GPUS, device_for_name
from train.loss import linear_cross_entropy
from train.metrics import read_metrics
from train.model import ModelConfig, Transformer, flops_per_token, flops_per_token_parts, param_counts
from train.parallel import apply_data_parallel, build_mesh, init_distributed, set_gradient_sync
from train.trainer import train

SMALL = dict(vocab_size=257, seq_len=32, n_layer=2, n_head=4, d_model=64)
GQA = dict(SMALL, n_kv_head=2, tie_embeddings=False)
ALIBI = dict(SMALL, pos="alibi", n_kv_head=2)


# ----------------------------------------------------------------------------- FLOPs / MFU

def test_flops_per_token_is_a_hand_count_with_the_head():
    """TinyLlama-1.1B (configs/train/llama1b.yaml), each matmul counted by hand: 2 FLOPs per multiply-add
    forward, x3 with backward."""
    cfg = ModelConfig.from_yaml("configs/train/llama1b.yaml")
    d, kv, f, L, T, V = 2048, 4 * 64, 5632, 22, 2048, 32000
    per_layer = d * d + d * kv + d * kv + d * d + 3 * d * f + 2 * d  # q k v o, gate up down, two norm gains
    forward = 2 * (L * per_layer + d) + L * 2 * (2 * T * d) + 2 * V * d  # + final norm, QK^T and AV, head
    assert flops_per_token(cfg) == 3 * forward == 7_314_370_560
    parts = flops_per_token_parts(cfg)
    assert parts["head"] == 6 * V * d and parts["head"] / flops_per_token(cfg) == pytest.approx(0.0538, abs=1e-4)
    # what leaving the head out under-stated MFU by: x1.057 at 1.1B, x1.31 at 125M (the figures)
    old = flops_per_token(cfg) - parts["head"]
    assert flops_per_token(cfg) / old == pytest.approx(1.057, abs=1e-3)
    small = ModelConfig.from_yaml("configs/train/gpt125m.yaml")
    assert flops_per_token(small) / (flops_per_token(small) - flops_per_token_parts(small)["head"]) == \
        pytest.approx(1.31, abs=0.01)


@pytest.mark.parametrize("kw", [SMALL, GQA])
@pytest.mark.parametrize("fused", [False, True])
def test_flops_per_token_equals_the_matmul_flops_pytorch_counts(kw, fused):
    """torch.utils.flop_counter over a real forward + backward (math attention, so its bmm are counted):
    every matmul the model runs, head and loss included, against the formula (which also counts the
    norm gains as 6 FLOPs per parameter, nanoGPT's convention)."""
    cfg = ModelConfig(**kw, fused_qkv=fused, fused_mlp=fused)
    model = Transformer(cfg, fused_loss=fused)
    x = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(x, x).backward()
    norm_gains = (2 * cfg.n_layer + 1) * cfg.d_model
    assert counter.get_total_flops() / x.numel() == flops_per_token(cfg) - 6 * norm_gains


# ----------------------------------------------------------------------------- FSDP and RoPE precision

@pytest.fixture
def one_rank_group():
    _, _, device = init_distributed("cpu")
    yield device
    dist.destroy_process_group()


def rope_dtypes(monkeypatch, model: torch.nn.Module) -> list[tuple[torch.dtype, torch.dtype, torch.dtype]]:
    """(x, cos, sin) dtypes seen by apply_rope in one training forward/backward of ``model``."""
    seen = []
    real = M.apply_rope

    def spy(x, cos, sin):
        seen.append((x.dtype, cos.dtype, sin.dtype))
        return real(x, cos, sin)

    monkeypatch.setattr(M, "apply_rope", spy)
    x = torch.randint(0, 257, (2, 33))
    model(x[:, :-1], x[:, 1:]).backward()
    return seen


def test_rope_tables_stay_fp32_inside_fsdp_bf16(one_rank_group, monkeypatch):
    device = one_rank_group
    torch.manual_seed(0)
    model = apply_data_parallel(Transformer(ModelConfig(**GQA)), "fsdp", build_mesh("fsdp", 1, device, None),
                                device, torch.bfloat16)
    seen = rope_dtypes(monkeypatch, model)
    assert len(seen) == 2 * 2  # q and k of both layers
    assert set(seen) == {(torch.bfloat16, torch.float32, torch.float32)}  # bf16 activations, fp32 angles


def test_fsdp_default_input_cast_would_round_the_rope_tables(one_rank_group, monkeypatch):
    """What the fix is for: FSDP2's default MixedPrecisionPolicy (cast_forward_inputs=True) hands
    apply_rope bf16 tables."""
    device = one_rank_group
    model = Transformer(ModelConfig(**GQA))
    mesh = build_mesh("fsdp", 1, device, None)
    for block in model.layers.values():
        fully_shard(block, mesh=mesh, mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16))
    fully_shard(model, mesh=mesh, mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16))
    assert {cos for _, cos, _ in rope_dtypes(monkeypatch, model)} == {torch.bfloat16}
    table = M.rope_cos_sin(64 // 4, 2048, 10000.0)[0]
    assert (table.bfloat16().float() - table).abs().max() > 1e-3  # what bf16 does to cos at 2,048 positions


def test_world_size_1_fsdp_keeps_parameters_gathered_across_micro_batches(one_rank_group):
    device = one_rank_group
    model = apply_data_parallel(Transformer(ModelConfig(**SMALL)), "fsdp", build_mesh("fsdp", 1, device, None),
                                device, None)
    assert model._keep_gathered
    block = model.layers["0"]
    x = torch.randint(0, 257, (2, 33))
    for m, last in enumerate((False, False, True)):
        set_gradient_sync(model, last)
        model(x[:, :-1], x[:, 1:]).backward()
        gathered = block._get_fsdp_state()._fsdp_param_group.is_unsharded
        assert gathered == (not last), m  # gathered through the accumulation, resharded after the last


# ----------------------------------------------------------------------------- fused = unfused

def pair(kw: dict, fused_loss: bool = False) -> tuple[Transformer, Transformer]:
    torch.manual_seed(3)
    plain = Transformer(ModelConfig(**kw, fused_qkv=False, fused_mlp=False))
    torch.manual_seed(3)
    fused = Transformer(ModelConfig(**kw, fused_qkv=True, fused_mlp=True), fused_loss=fused_loss)
    return plain, fused


@pytest.mark.parametrize("kw", [SMALL, GQA, ALIBI])
def test_fused_projections_and_loss_match_unfused(kw):
    plain, fused = pair(kw, fused_loss=True)
    cfg, weights = M.unfused_state_dict(fused.cfg, fused.state_dict())
    assert (cfg.fused_qkv, cfg.fused_mlp) == (False, False)
    ref = plain.state_dict()
    assert weights.keys() == ref.keys() and all(torch.equal(weights[k], ref[k]) for k in ref)  # same init, exactly
    x, y = torch.randint(0, 257, (4, 32)), torch.randint(0, 257, (4, 32))
    a, b = plain(x, y), fused(x, y)
    torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    a.backward()
    b.backward()
    grads = M.unfused_state_dict(fused.cfg, {n: p.grad for n, p in fused.named_parameters()})[1]
    for name, p in plain.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk", [7, 64, 10_000])
def test_chunked_linear_cross_entropy_matches_the_full_logits(chunk):
    torch.manual_seed(0)
    h = torch.randn(100, 48, requires_grad=True)
    w = (0.2 * torch.randn(300, 48)).requires_grad_()
    t = torch.randint(0, 300, (100,))
    ref = torch.nn.functional.cross_entropy(h @ w.t(), t)
    ref.backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    got = linear_cross_entropy(h, w, t, chunk=chunk)
    (2 * got).backward()  # the upstream gradient is applied in backward
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(h.grad, 2 * gh)
    torch.testing.assert_close(w.grad, 2 * gw)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(h, w, t, chunk=chunk), ref)


@pytest.mark.parametrize("kw", [SMALL, GQA, ALIBI])
def test_attention_kernels_agree(kw):
    """sdpa (native GQA), cudnn (on CPU: sdpa's fallback order) and FlexAttention (causal block mask, ALiBi as a
    score_mod; forward only on CPU) against a reference with explicit K/V copies and a dense mask."""
    x = torch.randint(0, 257, (2, 32))
    outs = {}
    for kernel in ("sdpa", "cudnn", "flex"):
        torch.manual_seed(5)
        model = Transformer(ModelConfig(**kw, attention=kernel)).eval()
        with torch.no_grad():
            outs[kernel] = model(x)
    torch.manual_seed(5)
    ref_model = Transformer(ModelConfig(**kw, attention="sdpa")).eval()
    cfg = ref_model.cfg

    def expanded(q, k, v, mask=None, is_causal=False, enable_gqa=False):  # the old path: repeat_interleave copies
        rep = cfg.n_head // cfg.n_kv_head
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        return real_sdpa(q, k, v, attn_mask=mask, is_causal=is_causal)

    real_sdpa = torch.nn.functional.scaled_dot_product_attention
    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(M.F, "scaled_dot_product_attention",
                   lambda q, k, v, attn_mask=None, is_causal=False, enable_gqa=False: expanded(q, k, v, attn_mask,
                                                                                               is_causal))
        ref = ref_model(x)
    for kernel, out in outs.items():
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5, msg=kernel)


def test_flex_refuses_to_train_on_cpu():
    model = Transformer(ModelConfig(**SMALL, attention="flex"))
    x = torch.randint(0, 257, (2, 33))
    with pytest.raises(ValueError, match="CUDA only"):
        model(x[:, :-1], x[:, 1:])


def test_auto_attention_is_sdpa_on_cpu():
    assert M.attention_kernel("auto", "rope", torch.device("cpu")) == "sdpa"
    assert M.attention_kernel("auto", "alibi", torch.device("cpu")) == "sdpa"
    assert M.attention_kernel("flex", "rope", torch.device("cpu")) == "flex"
    with pytest.raises(ValueError, match="attention must be one of"):
        ModelConfig(**SMALL, attention="flash3")


# ----------------------------------------------------------------------------- the trainer, end to end

@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    return byte_mixture(tmp_path_factory.mktemp("tp") / "mix")


def run(mix, out, *over):
    train(load_config(TINY, [f"data.dir={mix}", f"train.out_dir={out}", "train.steps=6", "train.log_every=1",
                             "train.global_batch_tokens=1024", "train.micro_batch=4", "data.val_splits=[]",
                             "train.progress=false", "train.tensorboard=false", "train.ckpt_every=-1",
                             "model.n_kv_head=2", *over]))
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "train"]


def test_world_size_1_trains_the_same_without_fsdp_and_without_resharding(mix, tmp_path):
    """fp32 on CPU: no wrapper, FSDP that keeps its parameters gathered (the new default at world size 1) and
    FSDP that reshards every micro-batch (the old behaviour) give the same losses, bit for bit, at 4
    micro-batches a step."""
    losses = {name: run(mix, tmp_path / name, *over) for name, over in
              {"none": ["train.strategy=none"], "fsdp": ["train.strategy=fsdp"],
               "fsdp_reshard": ["train.strategy=fsdp", "train.reshard_after_forward=true"]}.items()}
    assert len(losses["none"]) == 6 and losses["none"][-1] < losses["none"][0]
    for name in ("fsdp", "fsdp_reshard"):
        assert losses[name] == losses["none"], name


def test_fused_and_unfused_training_runs_match(mix, tmp_path):
    """The trainer's defaults (fused q|k|v and gate|up, chunked loss, prefetching loader) against everything off."""
    fast = run(mix, tmp_path / "fast")
    plain = run(mix, tmp_path / "plain", "model.fused_qkv=false", "model.fused_mlp=false", "train.fused_loss=false",
                "train.prefetch=false")
    assert fast == pytest.approx(plain, rel=1e-5)


def test_export_of_a_fused_model_matches_transformers(mix, tmp_path):
    transformers = pytest.importorskip("transformers")
    from train.export import export

    checkpoint = trained(mix, tmp_path / "run", "model.tie_embeddings=false")
    meta = json.loads((checkpoint / "meta.json").read_text())
    assert meta["config"]["model"]["fused_qkv"] and meta["config"]["model"]["fused_mlp"]  # trained fused
    fused = Transformer(ModelConfig.from_dict(meta["config"]["model"])).eval()
    state = {"model": fused.state_dict()}
    import torch.distributed.checkpoint as dcp
    dcp.load(state, checkpoint_id=str(checkpoint), planner=ckpt.TensorOnlyLoadPlanner(), no_dist=True)
    fused.load_state_dict(state["model"])
    out = export(checkpoint, tmp_path / "hf")
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    assert json.loads((out / "domainlm_config.json").read_text())["model"]["fused_qkv"] is False  # as exported
    hf = transformers.LlamaForCausalLM.from_pretrained(str(out), attn_implementation="eager").eval()
    idx = torch.randint(0, 257, (2, fused.cfg.seq_len))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, fused(idx), rtol=1e-4, atol=1e-4)


def test_async_checkpoint_holds_the_state_of_its_step(one_rank_group, tmp_path):
    device = one_rank_group
    torch.manual_seed(0)
    model = Transformer(ModelConfig(**SMALL))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.randint(0, 257, (2, 33))
    model(x[:, :-1], x[:, 1:]).backward()
    opt.step()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pending = ckpt.AsyncCheckpoint(tmp_path, 1, model, opt, {"note": "async"}, device)
    model(x[:, :-1], x[:, 1:]).backward()
    opt.step()  # training goes on, updating the weights in place while the files are written
    assert not torch.equal(model.state_dict()["norm.weight"], before["norm.weight"])
    final = pending.wait()
    assert ckpt.latest_checkpoint(tmp_path) == final and not (tmp_path / "step_00000001.tmp").exists()
    fresh = Transformer(ModelConfig(**SMALL))
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    fresh(x[:, :-1], x[:, 1:]).backward()
    fresh_opt.step()  # optimizer states to load into
    meta = ckpt.load_checkpoint(final, fresh, fresh_opt, device)
    assert meta["note"] == "async" and meta["step"] == 1
    assert all(torch.equal(fresh.state_dict()[k], before[k]) for k in before)


# ----------------------------------------------------------------------------- peaks

@pytest.mark.parametrize("name,tflops", [("NVIDIA H200 NVL", 835.5), ("NVIDIA H200", 989.4),
                                         ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.5),
                                         ("NVIDIA H100 NVL", 835.5), ("NVIDIA A100-SXM4-80GB", 312)])
def test_device_names_find_their_dense_bf16_peak(name, tflops):
    assert device_for_name(name).peak("bf16") == pytest.approx(tflops * 1e12)
    assert device_for_name("NVIDIA GeForce RTX 4090") is None
    assert GPUS["h200-nvl"].memory_bytes == GPUS["h200-141gb"].memory_bytes


def test_param_counts_do_not_depend_on_fusion():
    for kw in (SMALL, GQA, ALIBI):
        assert param_counts(ModelConfig(**kw, fused_qkv=True, fused_mlp=True)) == \
            param_counts(ModelConfig(**kw, fused_qkv=False, fused_mlp=False))
