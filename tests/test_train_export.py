"""Export: HF Llama names and config, logits equal to ours (by a reference forward, and by transformers
where installed), tokenizer files, and a model card filled from the run's records."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file

from train.bytemix import build_byte_mixture
from train.config import load_config
from train.export import export, hf_name, load_consolidated
from train.model import ModelConfig, Transformer
from train.trainer import train
from tests.conftest import DATA

CORPORA = DATA  # the repo's embedded sample: portable to any checkout
TINY = Path(__file__).resolve().parent.parent / "configs" / "train" / "tiny.yaml"


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    out = tmp_path_factory.mktemp("mix")
    build_byte_mixture(out, [f"{CORPORA}/finance/reuters_finance.jsonl.gz"], [f"{CORPORA}/general/austen.jsonl.gz"],
                       max_bytes=80_000)
    # Pretend the mixture came with a real tokenizer file, so the export must ship it.
    (out / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.update({"tokenizer": str(out / "tokenizer.json"), "eos_id": 256, "domain_share_target": 0.51})
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def trained(mix, out, *over):
    train(load_config(TINY, [f"data.dir={mix}", f"train.out_dir={out}", "train.steps=3", "train.log_every=1",
                             "train.global_batch_tokens=512", "train.micro_batch=4", "train.eval_tokens=2048",
                             "train.progress=false", "train.tensorboard=false", "model.n_kv_head=2", *over]))
    return out / "checkpoints" / "step_00000003"


def llama_reference_logits(hf_dir: Path, idx: torch.Tensor) -> torch.Tensor:
    """Hugging Face Llama's forward written from its config.json and tensor names alone (rotate-half RoPE,
    repeat_kv, SwiGLU gate/up/down), independent of train.model."""
    c = json.loads((hf_dir / "config.json").read_text())
    w = load_file(str(hf_dir / "model.safetensors"))
    H, KV, hd, T = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], idx.shape[1]

    def rms(x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + c["rms_norm_eps"]) * g

    inv = 1.0 / c["rope_parameters"]["rope_theta"] ** (torch.arange(0, hd, 2).double() / hd)
    ang = torch.outer(torch.arange(T).double(), inv)
    ang = torch.cat([ang, ang], -1)
    cos, sin = ang.cos().float(), ang.sin().float()

    def rope(x):
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    x = w["model.embed_tokens.weight"][idx]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(1, T, H, hd).transpose(1, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(1, T, KV, hd).transpose(1, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(1, T, KV, hd).transpose(1, 2)
        k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
        att = (rope(q) @ rope(k).transpose(-1, -2)) / math.sqrt(hd)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        x = x + (att @ v).transpose(1, 2).reshape(1, T, H * hd) @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        gate, up = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    head = w["model.embed_tokens.weight"] if c["tie_word_embeddings"] else w["lm_head.weight"]
    return rms(x, w["model.norm.weight"]) @ head.T


@pytest.mark.parametrize("tied", [True, False])
def test_exported_weights_reproduce_our_logits(mix, tmp_path, tied):
    ckpt = trained(mix, tmp_path / "run", f"model.tie_embeddings={str(tied).lower()}")
    out = export(ckpt, tmp_path / "hf")
    cfg, state, _ = load_consolidated(ckpt)
    model = Transformer(cfg).eval()
    model.load_state_dict(state)
    weights = load_file(str(out / "model.safetensors"))
    expected = {hf_name(n) for n in state if not (tied and n == "output.weight")}
    assert set(weights) == expected and ("lm_head.weight" in weights) == (not tied)
    idx = torch.randint(0, cfg.vocab_size, (1, cfg.seq_len))
    with torch.no_grad():
        torch.testing.assert_close(llama_reference_logits(out, idx), model(idx), rtol=1e-4, atol=1e-4)


def test_config_json_tokenizer_and_model_card(mix, tmp_path):
    out = export(trained(mix, tmp_path / "run"), tmp_path / "hf")
    c = json.loads((out / "config.json").read_text())
    cfg = ModelConfig.from_yaml(TINY)
    assert c["architectures"] == ["LlamaForCausalLM"] and c["model_type"] == "llama"
    assert (c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"], c["num_key_value_heads"]) == \
        (cfg.d_model, cfg.n_layer, cfg.n_head, 2)
    assert (c["intermediate_size"], c["vocab_size"], c["max_position_embeddings"]) == (cfg.ffn_hidden, 257, cfg.seq_len)
    assert c["tie_word_embeddings"] is True and c["eos_token_id"] == 256 and c["hidden_act"] == "silu"
    assert (out / "tokenizer.json").read_text() == (mix / "tokenizer.json").read_text()
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"

    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["pipeline_tag"] == "text-generation" and front["library_name"] == "transformers"
    for section in ("## Model details", "### Intended use", "### Out-of-scope use", "## Bias, risks and limitations",
                    "## Training details", "### Hyperparameters", "### Hardware and time", "## Evaluation"):
        assert section in card
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    final = {r["split"]: r for r in metrics if r["kind"] == "eval"}
    assert f"{final['val_domain']['ppl']:.4g}" in card and f"{final['val_general']['bpb']:.4g}" in card
    assert "| reuters_finance | domain |" in card and "| austen | general |" in card
    assert "target 0.51" in card


def test_alibi_model_exports_weights_without_a_llama_config(mix, tmp_path):
    out = export(trained(mix, tmp_path / "run", "model.pos=alibi"), tmp_path / "hf")
    assert (out / "model.safetensors").is_file() and not (out / "config.json").exists()
    assert json.loads((out / "domainlm_config.json").read_text())["model"]["pos"] == "alibi"


@pytest.mark.parametrize("tied", [True, False])
def test_transformers_llama_gives_our_logits(mix, tmp_path, tied):
    transformers = pytest.importorskip("transformers")  # optional extra: pip install domainlm[hf]
    ckpt = trained(mix, tmp_path / "run", f"model.tie_embeddings={str(tied).lower()}")
    out = export(ckpt, tmp_path / "hf")
    shutil.rmtree(tmp_path / "run" / "checkpoints")  # HF must need nothing but the export
    hf = transformers.LlamaForCausalLM.from_pretrained(str(out), attn_implementation="eager").eval()
    cfg = ModelConfig.from_dict(json.loads((out / "domainlm_config.json").read_text())["model"])
    model = Transformer(cfg).eval()
    model.load_state_dict(load_consolidated_from_hf(out, cfg))
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, model(idx), rtol=1e-4, atol=1e-4)


def load_consolidated_from_hf(out: Path, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Our state dict rebuilt from the exported file through the name map (the inverse direction)."""
    weights = load_file(str(out / "model.safetensors"))
    names = Transformer(cfg).state_dict().keys()
    state = {n: weights[hf_name(n)] for n in names if not (cfg.tie_embeddings and n == "output.weight")}
    if cfg.tie_embeddings:
        state["output.weight"] = state["tok_embeddings.weight"]
    return state
