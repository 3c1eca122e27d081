"""Vocabularies over 65,536 ids end to end: a 128k-entry pretrained-style tokenizer (Llama-like:
``<s>`` BOS added by its post-processor, ``</s>`` EOS) -> tokenize stage -> mixer -> trainer batches,
with ids above 65,535 surviving exactly (compared with ``tokenizer.encode``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from core.documents import DOC_SCHEMA
from mixtures import mix as M
from mixtures import tokenizer as T
from mixtures.shards import TokenStream, list_shards, manifest_dtype, token_dtype
from pipelines import tokenize
from pipelines.io import write_parquet_file
from train.data import StepBatches

VOCAB = 131_072  # 2**17, BloombergGPT's vocabulary size (Wu et al. 2023, Sec. 2.3)
SPECIALS = ["<unk>", "<s>", "</s>"]  # Llama 2's ids 0, 1, 2


def _docs(docs: list[dict], source: str, domain: str, n: int) -> list[dict]:
    return [{"id": d["id"], "text": d["text"], "source": source, "domain": domain, "meta": "{}"} for d in docs[:n]]


def wide_tokenizer(texts: list[str]) -> Tokenizer:
    """A WordLevel tokenizer of ``VOCAB`` entries whose real words sit at the top of the id range
    (filler pieces that never occur in text pad the bottom), so real text encodes to ids > 65,535."""
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t)})
    filler = VOCAB - len(SPECIALS) - len(words)
    assert filler > 2**16, "the test text must leave room for ids above 65,535"
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    vocab.update({f"<filler_{i}>": len(SPECIALS) + i for i in range(filler)})
    vocab.update({w: len(SPECIALS) + filler + i for i, w in enumerate(words)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    assert tok.get_vocab_size() == VOCAB
    return tok


@pytest.fixture(scope="module")
def wide_mix(tmp_path_factory, finance_docs, general_docs):
    root = tmp_path_factory.mktemp("wide")
    fin, gen = _docs(finance_docs, "reuters", "domain", 60), _docs(general_docs, "bbc", "general", 60)
    write_parquet_file(str(root / "curated" / "train-00000.parquet"), fin + gen, DOC_SCHEMA)
    tok = wide_tokenizer([d["text"] for d in fin + gen])
    (root / "base").mkdir()
    tok.save(str(root / "base" / "tokenizer.json"))
    stats = tokenize.main(["--input", str(root / "curated"), "--output", str(root / "tokens"),
                           "--tokenizer", str(root / "base"), "--batch-size", "16"])
    recipe = {"tokens_dir": str(root / "tokens"), "seed": 3, "domain_share": 0.5,
              "target": {"params": 1_000, "tokens_per_param": 20}, "max_epochs": 4, "val_fraction": 0.05,
              "shard_tokens": 5_000,
              "sources": [{"name": "reuters", "domain": "domain"}, {"name": "bbc", "domain": "general"}]}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    manifest = M.main(["--recipe", str(root / "recipe.yaml"), "--output", str(root / "mix")])
    texts = {(d["source"], d["id"]): d["text"] for d in fin + gen}
    return root, tok, stats, manifest, texts


def _reference(tok: Tokenizer, text: str) -> list[int]:
    """What a document must be in the shards: the base's own BOS convention, its ids, then EOS."""
    return tok.encode(text, add_special_tokens=True).ids + [tok.token_to_id("</s>")]


def test_pretrained_conventions_are_read_from_tokenizer_json(finance_docs):
    tok = wide_tokenizer([finance_docs[0]["text"]])
    assert T.eos_id(tok) == 2 and T.bos_ids(tok) == [1]
    ours = T.train_tokenizer([finance_docs[0]["text"]], T.TokenizerConfig(type="bpe", vocab_size=300))
    assert T.bos_ids(ours) == [] and T.eos_id(ours) == ours.token_to_id(T.EOS)  # the project's: unchanged


def test_tokenize_writes_uint32_shards_that_match_encode(wide_mix):
    root, tok, stats, _, texts = wide_mix
    assert stats["balanced"] and stats["tokenizer"]["dtype"] == "uint32" and stats["tokenizer"]["bos_ids"] == [1]
    seen_high = 0
    for domain, source in (("domain", "reuters"), ("general", "bbc")):
        for prefix in list_shards(root / "tokens" / domain / source):
            tokens = np.load(prefix + ".tokens.npy", mmap_mode="r")
            offsets = np.load(prefix + ".docs.npy")
            ids = pq.read_table(prefix + ".index.parquet").column("id").to_pylist()
            assert tokens.dtype == np.uint32
            for i, doc_id in enumerate(ids):
                doc = tokens[offsets[i]:offsets[i + 1]]
                assert doc.tolist() == _reference(tok, texts[(source, doc_id)])
                seen_high += int((doc > 65_535).sum())
    assert seen_high > 1_000  # the real words, not only specials


def test_mix_and_trainer_batches_keep_ids_above_65535(wide_mix):
    root, tok, _, manifest, texts = wide_mix
    assert manifest["dtype"] == "uint32" and manifest["vocab_size"] == VOCAB
    assert manifest["eos_token"] == "</s>" and manifest["eos_id"] == 2 and manifest["bos_id"] == 1
    stream = TokenStream(root / "mix" / "train", dtype=manifest_dtype(manifest))
    # the reference stream: the mixer's documents, in its order, encoded by the tokenizer itself
    reference = []
    for prefix in list_shards(root / "mix" / "train"):
        t = pq.read_table(prefix + ".index.parquet")
        for source, doc_id in zip(t.column("source").to_pylist(), t.column("id").to_pylist()):
            reference += _reference(tok, texts[(source, doc_id)])
    reference = np.asarray(reference, dtype=np.int64)
    assert reference.size == len(stream) and (reference > 65_535).sum() > 1_000
    seq_len = 64
    batches = StepBatches(stream, seq_len=seq_len, global_batch=8, rank=0, world=1, micro_batch=4, seed=11)
    high = 0
    for step in range(5):
        windows = batches.sample_windows(batches.rank_samples(step).ravel())
        got = batches.tokens(step).reshape(len(windows), seq_len + 1)
        for w, row in zip(windows, got):
            assert row.tolist() == reference[w * seq_len:w * seq_len + seq_len + 1].tolist()
        high += int((got > 65_535).sum())
    assert high > 0


def test_readers_know_the_dtype(wide_mix, tmp_path: Path):
    root, *_ = wide_mix
    assert manifest_dtype({}) == np.uint16  # a manifest from before the field: uint16 shards
    assert token_dtype(2**16) == np.uint16 and token_dtype(2**16 + 1) == np.uint32
    with pytest.raises(ValueError, match="uint32"):
        TokenStream(root / "mix" / "train", dtype="uint16")
