"""model.init_from: tiny random Hugging Face models built here with transformers' own classes (nothing is
downloaded), saved, imported, and compared logit by logit with transformers in fp32 on CPU."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from core.config import ConfigError  # noqa: E402
from train import hf_import  # noqa: E402
from train.config import config_from_dict  # noqa: E402
from train.model import Transformer  # noqa: E402

TINY = dict(vocab_size=96, hidden_size=32, intermediate_size=56, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=64)
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16}


def llama3(**kw):
    # rope_theta small so the llama3 scaling touches low, medium and high frequencies within head_dim=8
    return transformers.LlamaConfig(**{**TINY, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
                                       "tie_word_embeddings": False, "rope_theta": 500.0,
                                       "rope_scaling": dict(LLAMA3_ROPE), **kw})


def qwen2(**kw):
    return transformers.Qwen2Config(**{**TINY, "num_key_value_heads": 2, "tie_word_embeddings": False,
                                       "rms_norm_eps": 1e-5, **kw})


def mistral(**kw):
    return transformers.MistralConfig(**{"sliding_window": None, **TINY, "num_key_value_heads": 1, **kw})


def save(hf_cfg, path, seed: int = 0, **save_kw):
    """A random model of ``hf_cfg`` saved to ``path``; its biases and norms are random too, so a weight put
    in the wrong place shows in the logits."""
    torch.manual_seed(seed)
    model = getattr(transformers, hf_cfg.architectures[0] if hf_cfg.architectures else
                    {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                     "mistral": "MistralForCausalLM"}[hf_cfg.model_type])(hf_cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if "norm" in name else 0.0))
    model.save_pretrained(path, **save_kw)
    return model


def compare(hf_model, model_dir, seq_len: int = 48, **user) -> float:
    """Max |logit difference| between transformers and the imported project model on real-length input."""
    cfg = hf_import.model_config_from_hf(model_dir, {"seq_len": seq_len, **user})
    model = Transformer(cfg).eval()
    hf_import.load_into(model, model_dir)
    ids = torch.randint(0, cfg.vocab_size, (2, seq_len), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf_model(ids).logits
        got = model(ids)
    return (ref - got).abs().max().item()


@pytest.mark.parametrize("fused", [True, False])
def test_llama3_rope_scaling_gqa_exact(tmp_path, fused):
    hf = save(llama3(), tmp_path)
    cfg = hf_import.model_config_from_hf(tmp_path, {"seq_len": 48})
    assert cfg.rope_scaling["rope_type"] == "llama3" and cfg.n_kv_head == 2 and not cfg.tie_embeddings
    assert compare(hf, tmp_path, fused_qkv=fused, fused_mlp=fused) < 1e-4


def test_llama_tied_embeddings_and_two_shards(tmp_path):
    hf = save(llama3(tie_word_embeddings=True), tmp_path, max_shard_size="20KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 2  # really sharded
    assert hf_import.model_config_from_hf(tmp_path).tie_embeddings
    assert compare(hf, tmp_path) < 1e-4


def test_qwen2_biases_untied_head_exact(tmp_path):
    hf = save(qwen2(), tmp_path)
    cfg = hf_import.model_config_from_hf(tmp_path, {"seq_len": 48})
    assert cfg.qkv_bias and not cfg.tie_embeddings
    assert compare(hf, tmp_path) < 1e-4
    assert compare(hf, tmp_path, fused_qkv=False) < 1e-4


def test_mistral_exact(tmp_path):
    hf = save(mistral(), tmp_path)
    assert compare(hf, tmp_path) < 1e-4


def test_mistral_window_longer_than_seq_len_is_accepted(tmp_path):
    hf = save(mistral(sliding_window=64), tmp_path)
    assert compare(hf, tmp_path, seq_len=48) < 1e-4


def test_wrong_weights_are_detected(tmp_path):
    """The comparison can fail: a model of another seed differs by far more than the tolerance."""
    save(llama3(), tmp_path / "a", seed=0)
    other = save(llama3(), tmp_path / "b", seed=1)
    assert compare(other, tmp_path / "a") > 1e-2


def test_train_config_init_from(tmp_path):
    save(qwen2(), tmp_path)
    cfg = config_from_dict({"model": {"init_from": str(tmp_path), "seq_len": 32},
                            "train": {"global_batch_tokens": 64}})
    assert (cfg.model.d_model, cfg.model.seq_len, cfg.model.init_from) == (32, 32, str(tmp_path))
    with pytest.raises(ConfigError, match="d_model"):
        config_from_dict({"model": {"init_from": str(tmp_path), "d_model": 64}})
    with pytest.raises(ConfigError, match="max_position_embeddings"):
        config_from_dict({"model": {"init_from": str(tmp_path), "seq_len": 128}})


@pytest.fixture
def one_rank_group():
    import torch.distributed as dist

    from train.parallel import init_distributed

    init_distributed("cpu")
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("strategy, checkpointing", [("fsdp", True), ("none", False)])
def test_build_model_loads_the_base(tmp_path, one_rank_group, strategy, checkpointing):
    """The trainer's path (FSDP2: load after sharding, into DTensors; activation checkpointing renames the
    blocks' parameters): the built model computes the base's logits."""
    from train.trainer import build_model

    hf = save(qwen2(), tmp_path)
    cfg = config_from_dict({"model": {"init_from": str(tmp_path), "seq_len": 16},
                            "train": {"strategy": strategy, "device": "cpu", "dtype": "fp32", "global_batch_tokens": 32,
                                      "activation_checkpointing": checkpointing}})
    run = build_model(cfg, torch.device("cpu"), 1, 10)
    ids = torch.arange(16)[None] % 96
    with torch.no_grad():
        assert (run.model.eval()(ids) - hf(ids).logits).abs().max().item() < 1e-4


def _two_rank_worker(rank: int, model_dir: str, port: int, out: str) -> None:
    import os

    import torch.distributed as dist

    from train.parallel import apply_data_parallel, build_mesh

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = Transformer(hf_import.model_config_from_hf(model_dir, {"seq_len": 16}))
        model = apply_data_parallel(model, "fsdp", build_mesh("fsdp", 2, torch.device("cpu"), None),
                                    torch.device("cpu"), None)
        reads = hf_import.load_into(model, model_dir)
        with torch.no_grad():
            logits = model(torch.arange(16)[None] % 96)
        torch.save({"reads": reads, "logits": logits}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_fsdp_ranks_each_read_their_rows(tmp_path):
    """Two gloo ranks: each copies only its rows of each tensor, and the sharded model is the base."""
    import socket

    import torch.multiprocessing as mp

    hf = save(qwen2(), tmp_path / "base")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_two_rank_worker, args=(str(tmp_path / "base"), port, str(tmp_path / "out")), nprocs=2)
    with torch.no_grad():
        ref = hf(torch.arange(16)[None] % 96).logits
    for rank in (0, 1):
        got = torch.load(tmp_path / f"out.{rank}")
        assert (got["logits"] - ref).abs().max().item() < 1e-4
    # a fused wqkv / w13 spans several HF tensors: each rank touches only those overlapping its rows
    full = len(hf_import.hf_names(hf_import.model_config_from_hf(tmp_path / "base", {"seq_len": 16})))
    reads = [torch.load(tmp_path / f"out.{r}")["reads"] for r in (0, 1)]
    assert all(r < full for r in reads) and sum(reads) >= full


def write_config(path, **over):
    path.mkdir(parents=True, exist_ok=True)
    doc = {"model_type": "llama", "vocab_size": 96, "hidden_size": 32, "intermediate_size": 56,
           "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 64, **over}
    (path / "config.json").write_text(json.dumps({k: v for k, v in doc.items() if v is not None}))
    return path


@pytest.mark.parametrize("over, needle", [
    ({"model_type": "gpt2"}, "model_type 'gpt2'"),
    ({"model_type": "mixtral"}, "model_type 'mixtral'"),
    ({"model_type": "qwen2", "num_experts": 8}, "mixture of experts"),
    ({"attention_bias": True}, "attention_bias on llama"),
    ({"mlp_bias": True}, "mlp_bias"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"head_dim": 16}, "head_dim"),
    ({"model_type": "mistral", "sliding_window": 16}, "sliding-window attention"),
    ({"model_type": "qwen2", "use_sliding_window": True}, "sliding-window attention"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope_type='yarn'"),
    ({"rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}}, "rope_type='dynamic'"),
])
def test_unsupported_is_one_line(tmp_path, over, needle):
    d = write_config(tmp_path, **over)
    with pytest.raises(ConfigError) as err:
        hf_import.model_config_from_hf(d, {"seq_len": 32})
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and "unsupported" in msg


def test_missing_dir_and_weights(tmp_path):
    with pytest.raises(ConfigError, match="config.json not found"):
        hf_import.model_config_from_hf(tmp_path / "nope")
    d = write_config(tmp_path / "base")
    cfg = hf_import.model_config_from_hf(d, {"seq_len": 32})
    with pytest.raises(ConfigError, match="neither model.safetensors"):
        hf_import.load_into(Transformer(cfg), d)


def _meta_worker(rank: int, model_dir: str, port: int, out: str) -> None:
    """One rank of a 2-rank gloo group: the trainer's ``build_model`` with and without the meta-device path,
    the full weights it loaded, and the losses of two optimizer steps on a fixed batch."""
    import os

    import torch.distributed as dist

    from train.trainer import build_model

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        cfg = config_from_dict({"model": {"init_from": model_dir, "seq_len": 16},
                                "train": {"strategy": "fsdp", "device": "cpu", "dtype": "fp32",
                                          "global_batch_tokens": 32, "activation_checkpointing": True},
                                "optim": {"lr": 1e-2}})
        ids = (torch.arange(2 * 17).view(2, 17) * (7 + rank)) % 96  # each rank its own micro-batch
        result = {}
        for meta in (True, False):
            run = build_model(cfg, torch.device("cpu"), 2, 10, meta_init=meta)
            meta_params = sum(p.to_local().is_meta for p in run.model.parameters())
            weights = {n: p.full_tensor().clone() for n, p in run.model.named_parameters()}
            buffers = {n: b.clone() for n, b in run.model.named_buffers()}
            losses = []
            for _ in range(2):
                loss = run.model(ids[:, :-1], ids[:, 1:])
                loss.backward()
                run.optimizer.step()
                run.optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
            result[meta] = {"weights": weights, "buffers": buffers, "losses": losses, "meta_params": meta_params}
        torch.save(result, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("make", [qwen2, llama3], ids=["qwen2", "llama3-tied"])
def test_meta_device_build_equals_the_whole_model_path(tmp_path, make):
    """FSDP over 2 gloo ranks: the model built on the meta device, materialized shard by shard and loaded from
    the base holds the same weights and position tables as the path that initializes the whole model on every
    rank first, nothing is left on the meta device, and its first two training losses are the same numbers."""
    import socket

    import torch.multiprocessing as mp

    kw = {"tie_word_embeddings": True} if make is llama3 else {}
    save(make(**kw), tmp_path / "base", max_shard_size="20KB")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_meta_worker, args=(str(tmp_path / "base"), port, str(tmp_path / "out")), nprocs=2)
    from safetensors.torch import load_file

    base = {}
    for f in sorted((tmp_path / "base").glob("*.safetensors")):
        base.update(load_file(str(f)))
    for rank in (0, 1):
        got = torch.load(tmp_path / f"out.{rank}")
        meta, whole = got[True], got[False]
        assert meta["meta_params"] == 0
        assert meta["weights"].keys() == whole["weights"].keys()
        for name in whole["weights"]:
            assert torch.equal(meta["weights"][name], whole["weights"][name]), name
        for name in whole["buffers"]:
            assert torch.equal(meta["buffers"][name], whole["buffers"][name]), name
        assert meta["losses"] == whole["losses"]
        assert meta["losses"][1] < meta["losses"][0]  # it trains
        emb = meta["weights"]["tok_embeddings.weight"]
        assert torch.equal(emb, base["model.embed_tokens.weight"])  # and the weights are the base's
