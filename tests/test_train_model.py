"""The model: analytic parameter counts match the module, shapes, causality, ALiBi, GQA."""

import pytest
import torch

from train.model import ModelConfig, Transformer, flops_per_token, llama_ffn_hidden, param_counts

CONFIGS = [
    dict(vocab_size=257, seq_len=32, n_layer=2, n_head=4, d_model=64),
    dict(vocab_size=257, seq_len=32, n_layer=2, n_head=4, d_model=64, n_kv_head=2, fused_qkv=False, fused_mlp=False),
    dict(vocab_size=257, seq_len=32, n_layer=2, n_head=4, d_model=64, tie_embeddings=False),
    dict(vocab_size=300, seq_len=16, n_layer=3, n_head=6, d_model=96, n_kv_head=2, ffn_hidden=200),
    dict(vocab_size=300, seq_len=16, n_layer=1, n_head=4, d_model=32, pos="alibi", tie_embeddings=False),
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_param_counts_equal_module_numel(kw):
    cfg = ModelConfig(**kw)
    model = Transformer(cfg)
    counts = param_counts(cfg)
    assert counts["total"] == sum(p.numel() for p in model.parameters())  # shared weights once
    vocab = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("tok_embeddings", "output")))
    assert counts["embedding"] == vocab
    assert counts["non_embedding"] == counts["total"] - counts["embedding"]


def test_llama_ffn_rule_and_flops():
    assert llama_ffn_hidden(4096) == 11008  # Llama-7B's published MLP width
    assert llama_ffn_hidden(768) == 2048
    cfg = ModelConfig(vocab_size=1000, seq_len=128, n_layer=2, n_head=2, d_model=64)
    # block weights + attention at full context + the output head (tests/test_train_throughput.py counts them)
    assert flops_per_token(cfg) == 6 * param_counts(cfg)["non_embedding"] + 12 * 2 * 64 * 128 + 6 * 1000 * 64


def test_config_from_yaml_section_and_top_level(tmp_path):
    (tmp_path / "a.yaml").write_text("model:\n  vocab_size: 100\n  n_layer: 3\ntrain:\n  steps: 5\n")
    (tmp_path / "b.yaml").write_text("vocab_size: 100\nd_model: 128\nn_head: 4\n")
    assert ModelConfig.from_yaml(tmp_path / "a.yaml").n_layer == 3
    b = ModelConfig.from_yaml(tmp_path / "b.yaml")
    assert (b.d_model, b.n_kv_head, b.ffn_hidden) == (128, 4, 512)
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"vocab_size": 10, "n_layers": 2})


@pytest.mark.parametrize("pos,attention", [("rope", "sdpa"), ("alibi", "sdpa"), ("rope", "flex"), ("alibi", "flex")])
def test_forward_is_causal(pos, attention):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, seq_len=16, n_layer=2, n_head=4, d_model=32, n_kv_head=2, pos=pos,
                      attention=attention)
    model = Transformer(cfg).eval()
    x = torch.randint(0, 50, (2, 16))
    y = x.clone()
    y[:, 10:] = (y[:, 10:] + 1) % 50  # change only the future
    with torch.no_grad():
        a, b = model(x), model(y)
    assert a.shape == (2, 16, 50)
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_untrained_loss_is_near_uniform():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=257, seq_len=32, n_layer=2, n_head=4, d_model=64)
    loss = Transformer(cfg)(torch.randint(0, 257, (4, 32)), torch.randint(0, 257, (4, 32)))
    assert abs(loss.item() - torch.log(torch.tensor(257.0)).item()) < 0.3
