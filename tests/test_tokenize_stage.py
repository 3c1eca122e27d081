"""The tokenize stage end to end: shards per (domain, source) that decode back to the documents,
balanced stats with per-source counts, and the same bytes whatever the runner mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from core.documents import DOC_SCHEMA
from mixtures import tokenizer as T
from mixtures.shards import Shard, TokenStream, list_shards, read_doc_index
from pipelines import tokenize
from pipelines.io import write_parquet_file


def _rows(docs, domain, source=None):
    return [{"id": d["id"], "text": d["text"], "source": source or d["source"], "domain": domain, "meta": "{}"}
            for d in docs]


@pytest.fixture(scope="module")
def curated(tmp_path_factory, finance_docs, general_docs):
    """Two curated stage dirs of real text (one source name on both sides, like BBC News), plus edge cases."""
    root = tmp_path_factory.mktemp("curated")
    fin = _rows(finance_docs[:30], "domain") + _rows(general_docs[:10], "domain", source="bbc_news")
    fin.append({"id": "empty", "text": "", "source": "reuters_21578", "domain": "domain", "meta": "{}"})
    fin.append({"id": "literal-eos", "text": "The filing ends here <|endoftext|> and continues.",
                "source": "reuters_21578", "domain": "domain", "meta": "{}"})
    gen = _rows(general_docs[10:60], "general", source="bbc_news")
    write_parquet_file(str(root / "fin" / "train-00000.parquet"), fin[:20], DOC_SCHEMA)
    write_parquet_file(str(root / "fin" / "train-00001.parquet"), fin[20:], DOC_SCHEMA)
    write_parquet_file(str(root / "gen" / "train-00000.parquet"), gen, DOC_SCHEMA)
    texts = {(r["domain"], r["source"], r["id"]): r["text"] for r in fin + gen}  # input order
    cfg = T.TokenizerConfig(type="bpe", vocab_size=800)
    tok = T.train_tokenizer([r["text"] for r in fin + gen], cfg)
    tok_path = T.save_tokenizer(tok, root / "tok", cfg)
    return root, texts, tok_path


def _run(root: Path, tok_path: Path, out: Path, *extra: str) -> dict:
    return tokenize.main(["--input", str(root / "fin"), "--input", str(root / "gen"), "--output", str(out),
                          "--tokenizer", str(tok_path), "--batch-size", "16", *extra])


@pytest.fixture(scope="module")
def tokenized(curated, tmp_path_factory):
    root, texts, tok_path = curated
    out = tmp_path_factory.mktemp("tokens")
    return _run(root, tok_path, out), out


def test_stats_balance_and_count_every_source(tokenized, curated):
    stats, out = tokenized
    _, texts, tok_path = curated
    assert stats["balanced"] and stats["input"] == len(texts)
    assert stats["removed"] == {"empty_tokenization": 1} and stats["output"] == len(texts) - 1
    assert stats["tokenizer"]["vocab_size"] == 800 and stats["tokenizer"]["dtype"] == "uint16"
    assert stats["tokenizer"]["sha256"] == T.file_sha256(tok_path) == T.file_sha256(out / "tokenizer.json")
    assert set(stats["sources"]) == {"domain/reuters_21578", "domain/bbc_news", "general/bbc_news"}
    for rel, s in stats["sources"].items():
        shards = [Shard.open(p) for p in list_shards(out / rel)]
        assert s["tokens"] == sum(x.tokens.size for x in shards) and s["docs"] == sum(x.n_docs for x in shards)
        assert s["bytes"] == sum(int(read_doc_index(p)["bytes"].sum()) for p in list_shards(out / rel))
    assert sum(s["tokens"] for s in stats["sources"].values()) == stats["counts"]["tokens"]
    removed = [json.loads(line) for f in sorted((out / "removed").glob("part-*")) for line in f.open()]
    assert [(r["id"], r["reason"]) for r in removed] == [("empty", "empty_tokenization")]


def test_shards_decode_back_to_documents_with_one_eos_each(tokenized, curated):
    _, out = tokenized
    _, texts, tok_path = curated
    tok = Tokenizer.from_file(str(tok_path))
    eos = T.eos_id(tok)
    seen = 0
    for domain, source in (("domain", "reuters_21578"), ("domain", "bbc_news"), ("general", "bbc_news")):
        in_order = [k[2] for k in texts if k[:2] == (domain, source) and k[2] != "empty"]
        assert [i for p in list_shards(out / domain / source) for i in read_doc_index(p)["id"]] == in_order
        for prefix in list_shards(out / domain / source):
            shard, index = Shard.open(prefix), read_doc_index(prefix)
            assert shard.tokens.dtype == np.uint16
            for i, doc_id in enumerate(index["id"]):
                ids = np.asarray(shard.doc(i))
                assert ids[-1] == eos and eos not in ids[:-1]
                text = texts[(domain, source, doc_id)]
                assert tok.decode(ids[:-1].tolist()) == text
                assert index["bytes"][i] == len(text.encode("utf-8"))
                seen += 1
    assert seen == len(texts) - 1
    stream = TokenStream(out / "general" / "bbc_news")
    batch = stream.random_batch(np.random.default_rng(0), 3, 32)
    assert batch.shape == (3, 33) and batch.max() < 800


@pytest.mark.parametrize("mode", ["multi_threading", "multi_processing"])
def test_same_input_same_bytes_in_any_running_mode(tokenized, curated, tmp_path: Path, mode):
    _, out = tokenized
    root, _, tok_path = curated
    again = tmp_path / "again"
    _run(root, tok_path, again, "--direct_num_workers", "2", "--direct_running_mode", mode)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:  # stats.json included: it names the same tokenizer file
        assert (out / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_bad_tokenizer_path_is_a_clear_error(curated, tmp_path: Path, capsys):
    root, _, _ = curated
    with pytest.raises(SystemExit) as exc:
        _run(root, tmp_path / "missing.json", tmp_path / "out")
    assert exc.value.code == 2 and "error: cannot load tokenizer" in capsys.readouterr().err


def test_shards_roll_over_without_changing_the_token_stream(tokenized, curated, tmp_path: Path):
    _, out = tokenized
    root, _, tok_path = curated
    small = tmp_path / "small"
    stats = _run(root, tok_path, small, "--part-mb", "0.01", "--split-mb", "0.001")
    rel = "general/bbc_news"
    assert len(list_shards(small / rel)) > len(list_shards(out / rel))
    assert stats["sources"][rel]["shards"] == len(list_shards(small / rel))
    tokens_a = np.concatenate([np.asarray(Shard.open(p).tokens) for p in list_shards(out / rel)])
    tokens_b = np.concatenate([np.asarray(Shard.open(p).tokens) for p in list_shards(small / rel)])
    assert np.array_equal(tokens_a, tokens_b)  # same documents, same order, more files
