"""Continued pretraining, there and back: a tiny Hugging Face base (built here with transformers' own classes,
nothing downloaded) -> ``model.init_from`` -> one training step at a learning rate too small to move an fp32
weight -> ``train.export`` -> ``AutoModelForCausalLM.from_pretrained``: the export is the base's class, with
the base's config, tokenizer files and logits (within 1e-4), and its card names the base."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

transformers = pytest.importorskip("transformers")


from run.dataset_card import write_dataset_card  # noqa: E402
from tests.bytemix import build_byte_mixture  # noqa: E402
from tests.conftest import DATA  # noqa: E402
from tests.test_train_export import byte_tokenizer  # noqa: E402  (the byte mixture's tokenizer)
from train.config import config_from_dict  # noqa: E402
from train.export import export  # noqa: E402
from train.trainer import train  # noqa: E402

EOS = 256  # the byte tokenizer's <|endoftext|>: the mixture's documents end with it
TINY = dict(vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, bos_token_id=EOS, eos_token_id=EOS)
BASES = {
    # Qwen2: q/k/v biases, an untied head, a Hub id recorded in config.json; trained under FSDP2, so built on
    # the meta device and loaded shard by shard (train/trainer.py build_model)
    "qwen2": (lambda: transformers.Qwen2Config(**TINY, tie_word_embeddings=False, rms_norm_eps=1e-5,
                                               rope_theta=10000.0),
              "Qwen2ForCausalLM", "fsdp", "acme/tiny-qwen2"),
    # Llama 3: grouped-query attention, llama3 RoPE scaling (theta small enough that it bends some frequencies
    # of head_dim 8), tied embeddings, no Hub id (the card names the directory); no wrapper
    "llama3": (lambda: transformers.LlamaConfig(**TINY, tie_word_embeddings=True, rms_norm_eps=1e-6,
                                                rope_theta=500.0,
                                                rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                              "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                              "original_max_position_embeddings": 16}),
               "LlamaForCausalLM", "none", None),
}


def make_base(kind: str, path):
    """A random base with random biases and norm gains too (a weight lost or misplaced shows in the logits),
    saved with its tokenizer files as a Hub checkpoint has them."""
    make, cls, _, hub_id = BASES[kind]
    torch.manual_seed(0)
    model = getattr(transformers, cls)(make()).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if "norm" in name else 0.0))
    model.save_pretrained(path)
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=byte_tokenizer(), eos_token="<|endoftext|>",
                                               bos_token="<|endoftext|>")
    tok.save_pretrained(path)
    if hub_id:  # as config.json files downloaded from the Hub record it
        doc = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({"_name_or_path": hub_id, **doc}, indent=1))
    return model


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    """A byte-level mixture of the embedded sample; its tokenizer.json is the bases' (the trainer checks)."""
    out = tmp_path_factory.mktemp("continue") / "mix"
    build_byte_mixture(out, [f"{DATA}/finance/reuters_finance.jsonl.gz"], [f"{DATA}/general/austen.jsonl.gz"],
                       max_bytes=40_000)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.update({"tokenizer": str(out / "tokenizer.json"), "eos_id": EOS, "bos_id": EOS})
    (out / "manifest.json").write_text(json.dumps(manifest))
    write_dataset_card(out.parent, [{"name": "reuters_finance", "domain": "domain", "license": "research use"},
                                    {"name": "austen", "domain": "general", "license": "public domain"}])
    return out


def continue_and_export(kind, base, mix, tmp_path):
    shutil.copyfile(base / "tokenizer.json", mix / "tokenizer.json")
    strategy = BASES[kind][2]
    cfg = config_from_dict({
        "model": {"init_from": str(base), "seq_len": 32},
        "data": {"dir": str(mix)},
        "optim": {"lr": 0.0, "warmup_steps": 0, "weight_decay": 0.0},  # one step at lr 0: the weights stay the base's
        "train": {"out_dir": str(tmp_path / "run"), "steps": 1, "global_batch_tokens": 128, "micro_batch": 4,
                  "strategy": strategy, "device": "cpu", "dtype": "fp32", "eval_tokens": 256, "log_every": 1,
                  "progress": False, "tensorboard": False}})
    train(cfg)
    return export(tmp_path / "run", tmp_path / "hf")


@pytest.mark.parametrize("kind", sorted(BASES))
def test_continue_one_step_then_export_is_the_base(kind, mix, tmp_path):
    base_model = make_base(kind, tmp_path / "base")
    out = continue_and_export(kind, tmp_path / "base", mix, tmp_path)
    cls, hub_id = BASES[kind][1], BASES[kind][3]

    loaded = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    assert type(loaded).__name__ == cls
    ids = torch.tensor([list(b"The company reported net revenue of $4.2 billion.")[:32]])
    with torch.no_grad():
        diff = (loaded(ids).logits - base_model(ids).logits).abs().max().item()
    assert diff < 1e-4

    config = json.loads((out / "config.json").read_text())
    base_config = json.loads((tmp_path / "base" / "config.json").read_text())
    assert config["architectures"] == [cls] and "_name_or_path" not in config
    for key in ("model_type", "tie_word_embeddings", "num_key_value_heads", "rope_parameters", "rms_norm_eps",
                "max_position_embeddings", "eos_token_id"):
        assert config.get(key) == base_config.get(key), key
    names = {n for n, _ in loaded.named_parameters()}
    if kind == "qwen2":
        assert "model.layers.0.self_attn.q_proj.bias" in names and "lm_head.weight" in names
    else:
        assert config["rope_parameters"]["rope_type"] == "llama3" and config["tie_word_embeddings"]
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):  # the base's, as they are
        assert (out / name).read_bytes() == (tmp_path / "base" / name).read_bytes(), name
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    assert tok.eos_token_id == EOS and tok("net revenue").input_ids == list(b"net revenue")

    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == (hub_id or "base") and config["model_type"] in front["tags"]
    assert "### Continued-training data" in card and "[DATASET_CARD.md](DATASET_CARD.md)" in card
    assert (out / "DATASET_CARD.md").is_file() and cls in card
    assert str(tmp_path) not in card + (out / "domainlm_config.json").read_text()  # no local path ships


def test_export_refuses_a_base_that_changed(mix, tmp_path):
    """The export reads the base's config.json again: a base directory that no longer describes the checkpoint
    (here: another width) is one error line and exit 2, not a model of the wrong shape."""
    make_base("llama3", tmp_path / "base")
    continue_and_export("llama3", tmp_path / "base", mix, tmp_path)
    doc = json.loads((tmp_path / "base" / "config.json").read_text())
    (tmp_path / "base" / "config.json").write_text(json.dumps({**doc, "intermediate_size": 96}))
    proc = subprocess.run([sys.executable, "-m", "train.export", "--checkpoint", str(tmp_path / "run"),
                           "--output", str(tmp_path / "hf2")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "ffn_hidden" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
