"""Export: HF Llama names and config, logits equal to ours (by a reference forward, and by transformers
where installed), tokenizer files with their special tokens, a Hub-ready model card filled from the run's
records, file modes and the CLI's exit status."""

import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

import mixtures.tokenizer as T
from run.dataset_card import write_dataset_card
from tests.bytemix import build_byte_mixture
from tests.conftest import DATA, ROOT, read_jsonl_gz
from train.checkpoint import read_meta
from train.config import load_config
from train.export import ExportError, export, hf_name, load_consolidated
from train.model import ModelConfig, Transformer, param_counts
from train.trainer import train

CORPORA = DATA  # the repo's embedded sample: portable to any checkout
TINY = Path(__file__).resolve().parent.parent / "configs" / "train" / "tiny.yaml"


def byte_tokenizer() -> Tokenizer:
    """The byte mixture's own tokenizer as a byte-level BPE: id b = byte b (GPT-2's byte-to-character table,
    no merges), id 256 = <|endoftext|>. Like GPT-2 it has no pad and no unk piece."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    char = {b: chr(b) if b in printable else chr(next(shifted)) for b in range(256)}
    tok = Tokenizer(models.BPE(vocab={char[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([T.EOS])
    return tok


def byte_mixture(out: Path) -> Path:
    build_byte_mixture(out, [f"{CORPORA}/finance/reuters_finance.jsonl.gz"], [f"{CORPORA}/general/austen.jsonl.gz"],
                       max_bytes=80_000)
    return out


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    """A byte-level mixture shipped with its real tokenizer (ids = bytes, 256 = EOS) and its dataset card, as a
    run's WORK/mix: the export must copy both."""
    out = byte_mixture(tmp_path_factory.mktemp("run") / "mix")
    tok = byte_tokenizer()
    assert tok.encode("héllo").ids == list("héllo".encode()) and tok.token_to_id(T.EOS) == 256
    tok.save(str(out / "tokenizer.json"))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.update({"tokenizer": str(out / "tokenizer.json"), "eos_id": 256, "domain_share_target": 0.51})
    (out / "manifest.json").write_text(json.dumps(manifest))
    write_dataset_card(out.parent, [{"name": "reuters_finance", "domain": "domain", "license": "research use"},
                                    {"name": "austen", "domain": "general", "license": "public domain"}])
    return out


@pytest.fixture(scope="module")
def unigram_mix(tmp_path_factory):
    """The same token stream, declared as a mixture of mixtures/tokenizer.py's Unigram tokenizer (specials
    <|endoftext|> 0, <|pad|> 1, <unk> 2), written as the mixer writes it: tokenizer.json alone."""
    out = byte_mixture(tmp_path_factory.mktemp("unigram_mix"))
    texts = [d["text"] for d in read_jsonl_gz(DATA / "finance" / "reuters_finance.jsonl.gz")[:40]]
    tok = T.train_tokenizer(texts, T.TokenizerConfig(type="unigram", vocab_size=400, shrinking_factor=0.5,
                                                     n_sub_iterations=1))
    tok.save(str(out / "tokenizer.json"))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.update({"tokenizer": str(out / "tokenizer.json"), "vocab_size": tok.get_vocab_size(),
                     "eos_id": 0, "eos_token": T.EOS, "pad_id": 1, "domain_share_target": 0.51})
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
    ckpt = trained(mix, tmp_path / "run", "model.pos=alibi")
    out = export(ckpt, tmp_path / "hf")
    assert (out / "model.safetensors").is_file() and not (out / "config.json").exists()
    assert json.loads((out / "domainlm_config.json").read_text())["model"]["pos"] == "alibi"
    with pytest.raises(ExportError, match="no ALiBi"):  # quantization goes through transformers' Llama
        export(ckpt, tmp_path / "int8", "int8")


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


@pytest.fixture(scope="module", params=["byte_bpe", "unigram"])
def hf_export(request, tmp_path_factory):
    """(export dir, run's checkpoint, mixture dir) for each tokenizer kind: without a pad piece (byte-level
    BPE, GPT-2 style) and with one (Unigram, <|pad|> and <unk>)."""
    mixture = request.getfixturevalue("mix" if request.param == "byte_bpe" else "unigram_mix")
    tmp = tmp_path_factory.mktemp(f"export_{request.param}")
    ckpt = trained(mixture, tmp / "run")
    umask = os.umask(0o022)  # what a login shell has: normal files are then 0644
    try:
        out = export(ckpt, tmp / "hf")
    finally:
        os.umask(umask)
    return out, ckpt, mixture


def test_transformers_auto_classes_load_pad_and_generate(hf_export, monkeypatch):
    transformers = pytest.importorskip("transformers")
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: patch the constant
    out, _, mixture = hf_export
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    assert tok.pad_token is not None and tok.padding_side == "left"
    texts = ["short", "a longer text, with a few more words in it"]
    batch = tok(texts, padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    raw = Tokenizer.from_file(str(mixture / "tokenizer.json"))
    n_short = len(raw.encode("short", add_special_tokens=False).ids)
    assert ids.shape[1] > n_short
    assert mask[0].tolist() == [0] * (ids.shape[1] - n_short) + [1] * n_short  # zeros on the padded (left) side
    assert ids[0, : ids.shape[1] - n_short].eq(tok.pad_token_id).all() and mask[1].all()
    assert ids[0, -n_short:].tolist() == raw.encode("short", add_special_tokens=False).ids  # nothing added
    with torch.no_grad():
        gen = model.generate(**batch, max_new_tokens=5)
    assert gen.shape[0] == 2 and gen.shape[1] > ids.shape[1]
    assert torch.equal(gen[:, : ids.shape[1]], ids)


def test_special_tokens_agree_across_tokenizer_config_and_generation_files(hf_export):
    transformers = pytest.importorskip("transformers")
    out, _, mixture = hf_export
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    c = json.loads((out / "config.json").read_text())
    g = json.loads((out / "generation_config.json").read_text())
    manifest = json.loads((mixture / "manifest.json").read_text())
    for d in (c, g):
        assert isinstance(d["pad_token_id"], int) and d["pad_token_id"] == tok.pad_token_id
        assert d["eos_token_id"] == tok.eos_token_id == manifest["eos_id"]
        assert d["bos_token_id"] == tok.bos_token_id == tok.eos_token_id
    tok_cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert json.loads((out / "special_tokens_map.json").read_text()) == \
        {k: tok_cfg[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token") if k in tok_cfg}
    if "pad_id" in manifest:  # Unigram: its own pad and unk pieces
        assert (tok.pad_token, tok.pad_token_id, tok.unk_token, tok.unk_token_id) == (T.PAD, 1, T.UNK, 2)
        assert tok.eos_token == T.EOS and tok.eos_token_id == 0
    else:  # byte-level BPE: no pad piece (eos doubles as pad) and no unk piece
        assert (tok.pad_token, tok.pad_token_id, tok.unk_token) == (T.EOS, 256, None)


def test_model_card_is_hub_ready_and_local_path_free(hf_export, tmp_path_factory):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    out, ckpt, mixture = hf_export
    card = huggingface_hub.ModelCard.load(out / "README.md")
    data = card.data
    assert data.language == ["en"] and data.license == "other"
    assert data.license_name and data.license_link == "LICENSE" and (out / "LICENSE").is_file()
    assert data.datasets == ["reuters_finance", "austen"] and "llama" in data.tags
    assert data.library_name == "transformers" and data.pipeline_tag == "text-generation"
    text = (out / "README.md").read_text()
    for path in out.iterdir():  # nothing that ships names a directory of the training machine
        if path.suffix in (".json", ".md", "") and path.is_file():
            for local in (str(tmp_path_factory.getbasetemp()), str(ROOT), str(mixture)):
                assert local not in path.read_text(), path.name
    assert not re.search(r"\bn/a\b", text)
    for section in ("## How to use", "AutoTokenizer.from_pretrained", "AutoModelForCausalLM.from_pretrained",
                    ".generate(", "## Tokenizer"):
        assert section in text
    meta = read_meta(ckpt)
    ratio = meta["tokens_seen"] / param_counts(ModelConfig.from_dict(meta["config"]["model"]))["total"]
    assert f"{ratio:.4g} tokens per parameter" in text
    tokenizer_part = text.split("## Tokenizer")[1].split("\n## ")[0]
    vocab = Tokenizer.from_file(str(mixture / "tokenizer.json")).get_vocab_size()
    assert f"Vocabulary: {vocab:,} tokens" in tokenizer_part and f"`{T.EOS}`" in tokenizer_part
    if vocab == 257:
        assert "byte-level BPE" in tokenizer_part and "no pad piece, so eos doubles as pad" in tokenizer_part
    else:
        assert "Unigram with byte fallback" in tokenizer_part
        assert f"`{T.PAD}` (id 1)" in tokenizer_part and f"`{T.UNK}` (id 2)" in tokenizer_part


def test_dataset_card_ships_with_the_model_and_is_linked(hf_export):
    out, _, mixture = hf_export
    readme = (out / "README.md").read_text()
    training_data = readme.split("### Training data")[1].split("\n### ")[0]
    if (mixture / "DATASET_CARD.md").is_file():  # the byte mixture has one, the Unigram mixture none
        assert (out / "DATASET_CARD.md").read_bytes() == (mixture / "DATASET_CARD.md").read_bytes()
        assert "[DATASET_CARD.md](DATASET_CARD.md)" in training_data
        assert "# domainlm run" in (out / "DATASET_CARD.md").read_text()
    else:
        assert not (out / "DATASET_CARD.md").exists() and "DATASET_CARD" not in readme


def test_exported_files_are_normal_files(hf_export):
    out, _, _ = hf_export
    modes = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in out.iterdir()}
    assert modes["model.safetensors"] == 0o644
    assert set(modes.values()) == {0o644}, modes


@pytest.mark.parametrize("args", [["--checkpoint", "{tmp}/no_such_run"],
                                  ["--checkpoint", "{tmp}", "--dtype", "int3"]])
def test_cli_user_errors_exit_2_with_one_error_line(tmp_path, args):
    argv = [a.format(tmp=tmp_path) for a in args] + ["--output", str(tmp_path / "hf")]
    r = subprocess.run([sys.executable, "-m", "train.export", *argv], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "hf").exists()


# ----------------------------------------------------------------------------- number formats

# Stated tolerance of each export against the fp32 export, as a fraction of the standard deviation of the
# fp32 logits over 2 x 64 random tokens: the largest difference for the 16-bit and int8 formats, the mean
# difference for the 4-bit ones (a 4-bit grid moves single logits of this 64-wide model by up to ~2 std).
# Measured when written: fp16 0.3% max, bf16 2.7% max, int8 3.3% max, int4 and 8da4w 4.6% mean.
EXPORT_TOLERANCE = {"fp16": ("max", 0.01), "bf16": ("max", 0.05), "int8": ("max", 0.10),
                    "int4": ("mean", 0.10), "8da4w": ("mean", 0.10)}


@pytest.fixture(scope="module")
def fp32_reference(mix, tmp_path_factory):
    """A run of 20 steps (logits well away from the initialization), its fp32 export, and the fp32 logits that
    transformers computes from it."""
    transformers = pytest.importorskip("transformers")
    tmp = tmp_path_factory.mktemp("formats")
    train(load_config(TINY, [f"data.dir={mix}", f"train.out_dir={tmp / 'run'}", "train.steps=20",
                             "train.global_batch_tokens=512", "train.micro_batch=4", "train.eval_tokens=2048",
                             "train.progress=false", "train.tensorboard=false"]))
    out = export(tmp / "run", tmp / "fp32")
    idx = torch.randint(0, 257, (2, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()(idx).logits
    return tmp / "run", out, idx, logits


@pytest.mark.parametrize("dtype", list(EXPORT_TOLERANCE))
def test_each_format_loads_in_transformers_within_its_stated_tolerance(fp32_reference, tmp_path, dtype, monkeypatch):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torchao")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_dir, fp32, idx, ref = fp32_reference
    out = export(run_dir, tmp_path / dtype, dtype)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    with torch.no_grad():
        diff = (model(idx).logits.float() - ref).abs()
        generated = model.generate(idx[:, :8], max_new_tokens=4, do_sample=False)
    stat, tol = EXPORT_TOLERANCE[dtype]
    assert getattr(diff, stat)() <= tol * ref.std(), (dtype, diff.max(), diff.mean(), ref.std())
    assert diff.max() > 0 and generated.shape == (2, 12)
    config = json.loads((out / "config.json").read_text())
    size, fp32_size = (out / "model.safetensors").stat().st_size, (fp32 / "model.safetensors").stat().st_size
    card = (out / "README.md").read_text()
    if dtype in ("fp16", "bf16"):
        assert model.dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        assert config["dtype"] == {"fp16": "float16", "bf16": "bfloat16"}[dtype]
        assert size == pytest.approx(fp32_size / 2, rel=0.01) and f"| Weights | {dtype} |" in card
        return
    assert config["quantization_config"]["quant_method"] == "torchao"
    # every weight matrix is a torchao tensor: 7 per block, the embedding and the (untied) head
    quantized = [n for n, p in model.named_parameters() if type(p) is not torch.nn.Parameter]
    assert len(quantized) == 7 * 2 + 2 and "lm_head.weight" in quantized
    assert size < 0.75 * fp32_size  # two int8-stored matrices of the vocabulary instead of one fp32 one
    assert "| Weights | " + {"int8": "int8 weight-only", "int4": "int4 weight-only",
                             "8da4w": "int8 dynamic per-token activations + int4 weights"}[dtype] in card
    assert "pip install torchao==0.18.0" in card


def test_an_alias_exports_the_same_bytes_as_its_format(fp32_reference, tmp_path):
    """``--dtype bfloat16`` and ``bf16-mixed`` are ``bf16`` (train/precision.py FORMATS): the same weights,
    config.json and card, byte for byte; ``float32`` is the default ``fp32``."""
    run_dir, fp32, *_ = fp32_reference
    bf16 = export(run_dir, tmp_path / "bf16", "bf16")
    for alias, ref in (("bfloat16", bf16), ("bf16-mixed", bf16), ("float32", fp32)):
        out = export(run_dir, tmp_path / alias, alias)
        for name in ("model.safetensors", "config.json", "README.md"):
            assert (out / name).read_bytes() == (ref / name).read_bytes(), (alias, name)
    assert json.loads((bf16 / "config.json").read_text())["dtype"] == "bfloat16"


def test_a_group_size_that_does_not_divide_the_layers_is_an_export_error(fp32_reference, tmp_path):
    pytest.importorskip("torchao")
    run_dir, *_ = fp32_reference
    with pytest.raises(ExportError, match="--group-size 48 must divide"):
        export(run_dir, tmp_path / "int4", "int4", group_size=48)


def test_base_model_name_for_the_card(tmp_path):
    """``base_model:`` of a continued run: the Hub id config.json records, else a Hub cache snapshot's id, else
    the directory's name (a local path in ``_name_or_path`` is never published)."""
    from train.model_card import base_model_name

    snap = tmp_path / "hub" / "models--Qwen--Qwen2-0.5B" / "snapshots" / "91d2aff3"
    snap.mkdir(parents=True)
    assert base_model_name({"_name_or_path": "meta-llama/Llama-2-7b-hf"}, tmp_path) == "meta-llama/Llama-2-7b-hf"
    assert base_model_name({"_name_or_path": str(tmp_path / "my/base")}, snap) == "Qwen/Qwen2-0.5B"
    assert base_model_name({"_name_or_path": "./ckpt/base"}, tmp_path / "smollm-135m") == "smollm-135m"
    assert base_model_name({}, tmp_path / "smollm-135m") == "smollm-135m"
