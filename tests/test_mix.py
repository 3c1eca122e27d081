"""The mixer: Chinchilla target and domain share hit, epochs as planned, held-out documents never
trained on, the blend in every part of the stream, same seed same bytes, and a clear shortfall."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from tokenizers import Tokenizer

from mixtures import mix as M
from mixtures import tokenizer as T
from mixtures.recipe import RecipeError, chinchilla_tokens, recipe_from_dict, target_tokens
from mixtures.shards import TokenStream, list_shards, write_doc_index, write_shard
from tests.conftest import DATA, read_jsonl_gz

VOCAB = 400


def _paragraphs(docs: list[dict], limit: int) -> list[tuple[str, str]]:
    """``(id, text)`` of the paragraphs of real documents: small documents, so targets are hit closely."""
    out = []
    for d in docs:
        for i, para in enumerate(p for p in d["text"].split("\n\n") if p.strip()):
            out.append((f"{d['id']}#{i}", para))
            if len(out) == limit:
                return out
    return out


def _write_source(root: Path, rel: str, docs: list[tuple[str, str]], tok: Tokenizer, n_shards: int) -> int:
    """A tokenized source laid out like the tokenize stage's output (``root/<domain>/<source>``)."""
    eos = T.eos_id(tok)
    ids = T.encode_documents(tok, [t for _, t in docs], eos)
    for k in range(n_shards):
        part = list(range(k, len(docs), n_shards))
        prefix = root / rel / f"part-{k:05d}-of-{n_shards:05d}"
        write_shard(prefix, [ids[i] for i in part], VOCAB)
        write_doc_index(prefix, [rel.split("/")[1]] * len(part), [docs[i][0] for i in part],
                        [len(docs[i][1].encode()) for i in part])
    return int(sum(a.size for a in ids))


@pytest.fixture(scope="module")
def tokens_dir(tmp_path_factory, finance_docs, general_docs):
    """Two real-text sources: finance news (domain, small) and BBC non-business news (general, large)."""
    root = tmp_path_factory.mktemp("tokens")
    fin = _paragraphs(finance_docs, 10_000)
    gen = _paragraphs(general_docs, 1_500)
    austen = _paragraphs(read_jsonl_gz(DATA / "general" / "austen.jsonl.gz")[:3], 300)
    tok = T.train_tokenizer([t for _, t in fin[:200] + gen[:200]], T.TokenizerConfig(type="bpe", vocab_size=VOCAB))
    tok.save(str(root / "tokenizer.json"))
    counts = {"domain/reuters": _write_source(root, "domain/reuters", fin, tok, 2),
              "general/bbc": _write_source(root, "general/bbc", gen, tok, 3),
              "general/austen": _write_source(root, "general/austen", austen, tok, 1)}
    sha = T.file_sha256(root / "tokenizer.json")
    stats = {"stage": "tokenize", "tokenizer": {"file": "tokenizer.json", "sha256": sha, "vocab_size": VOCAB},
             "sources": {rel: {"tokens": n} for rel, n in counts.items()}}
    (root / "stats.json").write_text(json.dumps(stats))
    return root, counts


def _recipe(root: Path, tmp_path: Path, **over) -> Path:
    doc = {"tokens_dir": str(root), "seed": 7, "domain_share": 0.51,
           "target": {"params": 6_000, "tokens_per_param": 20}, "max_epochs": 4, "val_fraction": 0.05,
           "shard_tokens": 20_000,
           "sources": [{"name": "reuters", "domain": "domain"}, {"name": "bbc", "domain": "general"}]}
    doc.update(over)
    path = tmp_path / f"recipe{len(list(tmp_path.glob('recipe*')))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _index(split_dir: Path) -> list[tuple[str, str]]:
    rows = []
    for prefix in list_shards(split_dir):
        t = pq.read_table(prefix + ".index.parquet")
        rows += list(zip(t.column("source").to_pylist(), t.column("id").to_pylist()))
    return rows


def test_two_sources_hit_target_share_and_epochs(tokens_dir, tmp_path: Path):
    root, counts = tokens_dir
    out = tmp_path / "mix"
    m = M.main(["--recipe", str(_recipe(root, tmp_path)), "--output", str(out)])
    target = 6_000 * 20
    assert m["params"] == 6_000 and m["tokens_per_param"] == 20 and m["target_tokens"] == target
    assert abs(m["train_tokens"] - target) <= 0.005 * target
    assert abs(m["domain_share_actual"] - 0.51) <= 0.005
    assert m["train_tokens"] == len(TokenStream(out / "train")) == m["splits"]["train"]["tokens"]
    fin, gen = m["sources"]["reuters"], m["sources"]["bbc"]
    assert fin["total_tokens"] == counts["domain/reuters"] and gen["total_tokens"] == counts["general/bbc"]
    # epochs = the side's share of the target over what the side has left after validation
    assert fin["epochs"] == pytest.approx(0.51 * target / fin["available_tokens"], rel=0.01)
    assert gen["epochs"] == pytest.approx(0.49 * target / gen["available_tokens"], rel=0.01)
    assert 1.0 < fin["epochs"] < 4.0 and gen["epochs"] < 1.0  # upsampled domain, subsampled general
    assert fin["train_unique_docs"] < fin["train_docs"]        # whole extra passes repeat documents
    assert m["eos_id"] == 0 and m["pad_id"] == 1 and m["eos_token"] == T.EOS
    assert m["vocab_size"] == VOCAB and Path(m["tokenizer"]).read_bytes() == (root / "tokenizer.json").read_bytes()
    assert m["val_bytes_per_token"]["val_domain"] > 1.0 and m["val_bytes_per_token"]["val_general"] > 1.0


def test_validation_is_disjoint_and_the_blend_is_everywhere(tokens_dir, tmp_path: Path):
    root, _ = tokens_dir
    out = tmp_path / "mix"
    m = M.mix(M.load_recipe(_recipe(root, tmp_path)), out)
    train = _index(out / "train")
    val_d, val_g = _index(out / "val_domain"), _index(out / "val_general")
    assert {s for s, _ in val_d} == {"reuters"} and {s for s, _ in val_g} == {"bbc"}
    assert not set(train) & (set(val_d) | set(val_g))
    assert len(val_d) == m["sources"]["reuters"]["val_docs"] and len(train) == m["splits"]["train"]["docs"]
    assert m["splits"]["val_domain"]["tokens"] >= 0.05 * m["sources"]["reuters"]["total_tokens"]
    # every tenth of the stream carries the blend, not one source after the other
    is_domain = np.array([s == "reuters" for s, _ in train])
    lengths = np.concatenate([np.diff(np.load(p + ".docs.npy")) for p in list_shards(out / "train")])
    for dom, n in zip(np.array_split(is_domain, 10), np.array_split(lengths, 10)):
        assert 0.35 < n[dom].sum() / n.sum() < 0.67
    batch = TokenStream(out / "train").random_batch(np.random.default_rng(0), 4, 64)
    assert batch.shape == (4, 65) and batch.max() < VOCAB


def test_same_seed_same_bytes_other_seed_other_order(tokens_dir, tmp_path: Path):
    root, _ = tokens_dir
    recipe = M.load_recipe(_recipe(root, tmp_path))
    a, b = tmp_path / "a", tmp_path / "b"
    M.mix(recipe, a)
    M.mix(recipe, b)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) > 6 and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        if rel.name == "manifest.json":
            ma, mb = json.loads((a / rel).read_text()), json.loads((b / rel).read_text())
            assert ma.pop("tokenizer") != mb.pop("tokenizer") and ma == mb
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    recipe.seed = 8
    M.mix(recipe, tmp_path / "c")
    assert (tmp_path / "c" / "train" / "part-00000.tokens.npy").read_bytes() != \
        (a / "train" / "part-00000.tokens.npy").read_bytes()


def test_shortfall_fails_with_what_is_missing_unless_allowed(tokens_dir, tmp_path: Path, capsys):
    root, _ = tokens_dir
    recipe = _recipe(root, tmp_path, target={"tokens": 1_000_000}, max_epochs=2)
    with pytest.raises(SystemExit) as exc:
        M.main(["--recipe", str(recipe), "--output", str(tmp_path / "short")])
    message = capsys.readouterr().err
    assert exc.value.code == 2 and message.startswith("error: mix: ")
    assert "domain side: missing" in message and "general side: ok" in message
    for advice in ("lower the target", "raise max_epochs", "add data", "--allow-shortfall"):
        assert advice in message
    assert not (tmp_path / "short" / "manifest.json").exists()

    m = M.main(["--recipe", str(recipe), "--output", str(tmp_path / "short"), "--allow-shortfall"])
    assert m["shortfall"]["missing_tokens"]["domain"] > 0 and m["train_tokens"] < 1_000_000
    assert abs(m["domain_share_actual"] - 0.51) <= 0.005   # the share is kept, the total shrinks
    assert m["sources"]["reuters"]["epochs"] == pytest.approx(2.0, rel=0.01)
    assert json.loads((tmp_path / "short" / "manifest.json").read_text())["shortfall"] is not None


def test_weights_and_max_epochs_redistribute_inside_a_side(tokens_dir, tmp_path: Path):
    root, _ = tokens_dir
    sources = [{"name": "reuters", "domain": "domain"},
               {"name": "bbc", "domain": "general", "weight": 1.0},
               {"name": "austen", "domain": "general", "weight": 3.0, "max_epochs": 1.5}]
    m = M.mix(M.load_recipe(_recipe(root, tmp_path, sources=sources)), tmp_path / "w")
    austen, bbc = m["sources"]["austen"], m["sources"]["bbc"]
    assert austen["epochs"] == pytest.approx(1.5, rel=0.02)             # capped: 3/4 of the side would exceed it
    general = 0.49 * 120_000
    assert bbc["planned_tokens"] == pytest.approx(general - austen["planned_tokens"], abs=1)  # bbc takes the rest
    assert bbc["sampled_tokens"] + austen["sampled_tokens"] == pytest.approx(general, rel=0.005)


def test_no_validation_leaves_readable_empty_sets(tokens_dir, tmp_path: Path):
    root, _ = tokens_dir
    m = M.mix(M.load_recipe(_recipe(root, tmp_path, val_fraction=0.0, target={"tokens": 20_000})), tmp_path / "nv")
    assert m["splits"]["val_domain"]["docs"] == 0 and m["val_bytes_per_token"]["val_domain"] is None
    assert len(TokenStream(tmp_path / "nv" / "val_general")) == 0
    assert m["sources"]["bbc"]["val_docs"] == 0 and abs(m["train_tokens"] - 20_000) <= 100


def test_missing_source_fails_unless_optional_and_unmixed_sources_are_reported(tokens_dir, tmp_path: Path):
    root, _ = tokens_dir
    sources = [{"name": "reuters", "domain": "domain"}, {"name": "bbc", "domain": "general"},
               {"name": "filtered_away", "domain": "general"}]
    with pytest.raises(RecipeError, match="filtered_away: no .*shards.*optional: true"):
        M.mix(M.load_recipe(_recipe(root, tmp_path, sources=sources)), tmp_path / "x")
    sources[2]["optional"] = True
    m = M.mix(M.load_recipe(_recipe(root, tmp_path, sources=sources)), tmp_path / "x")
    assert set(m["sources"]) == {"reuters", "bbc"}
    assert any("filtered_away skipped" in w for w in m["warnings"])
    assert any("not in the recipe" in w and "general/austen" in w for w in m["warnings"])


def test_allocate_water_fills_under_caps():
    alloc, missing = M.allocate(100.0, np.array([10.0, 100.0]), np.array([1.0, 1.0]), np.array([2.0, 4.0]))
    assert alloc.tolist() == pytest.approx([20.0, 80.0]) and missing == 0
    alloc, missing = M.allocate(500.0, np.array([10.0, 100.0]), np.array([1.0, 1.0]), np.array([2.0, 4.0]))
    assert alloc.tolist() == pytest.approx([20.0, 400.0]) and missing == pytest.approx(80.0)


def test_fill_to_gets_within_half_a_document():
    lengths = np.array([900, 40, 700, 300, 25, 60])
    assert M.fill_to(lengths, 1000).tolist() == [True, True, False, False, True, True]   # 1025: closer than 965
    assert M.fill_to(lengths, 50).tolist() == [False, True, False, False, False, False]
    assert M.fill_to(lengths, 10).tolist() == [False] * 6                                  # nothing brings it closer
    assert abs(int(lengths[M.fill_to(lengths, 1750)].sum()) - 1750) <= 25


def test_target_from_params_and_model_config(tmp_path: Path):
    base = {"sources": [{"name": "a", "domain": "domain", "path": "x"}, {"name": "b", "domain": "general",
                                                                        "path": "y"}]}
    assert target_tokens(recipe_from_dict({**base, "target": {"params": 1_000}}))["target_tokens"] == 20_000
    assert chinchilla_tokens(125_000_000) == 2_500_000_000
    cfg = tmp_path / "model.yaml"
    cfg.write_text("model:\n  vocab_size: 400\n  seq_len: 64\n  n_layer: 2\n  n_head: 2\n  d_model: 32\n")
    from train.model import ModelConfig, param_counts

    params = param_counts(ModelConfig.from_yaml(cfg))["total"]
    sized = target_tokens(recipe_from_dict({**base, "target": {"model_config": str(cfg), "tokens_per_param": 10}}))
    assert sized["params"] == params and sized["target_tokens"] == 10 * params
    cfg.write_text(cfg.read_text().replace("vocab_size: 400", "vocab_size: 0"))  # 0: the tokenizer's vocabulary
    from_mix = target_tokens(recipe_from_dict({**base, "target": {"model_config": str(cfg)}}), vocab_size=400)
    assert from_mix["params"] == params and from_mix["model_vocab_size"] == 400
    with pytest.raises(RecipeError, match="exactly one of tokens, params, model_config"):
        recipe_from_dict({**base, "target": {"tokens": 5, "params": 1}})
    with pytest.raises(RecipeError, match="no source is labeled general"):
        recipe_from_dict({"sources": base["sources"][:1], "target": {"tokens": 5}})


def test_a_source_whose_share_rounds_to_no_token_samples_nothing():
    """A weight small enough that a source's target is under half a token (a sweep's Dirichlet draw can give
    one) samples no document instead of failing; a target nearer a document than nothing samples one."""
    lengths = np.array([120, 80, 300])
    rng = np.random.default_rng(0)
    positions, keys = M.sample_source(lengths, 0.3, rng)
    assert positions.size == 0 and keys.size == 0
    positions, keys = M.sample_source(lengths, 100.0, rng)
    assert positions.size >= 1 and keys.size == positions.size and ((keys >= 0) & (keys < 1)).all()
