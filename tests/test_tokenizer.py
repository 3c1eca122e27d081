"""Tokenizer training: BloombergGPT-style Unigram (digits, byte fallback) and the byte-level BPEs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from mixtures import tokenizer as T
from pipelines.documents import DOC_SCHEMA
from pipelines.io import write_parquet_file
from tests.conftest import DATA, read_jsonl_gz

# Text no training sample below contains: emoji, rare CJK (one outside the BMP), Cyrillic,
# tabs, and literal special / byte-piece strings.
UNSEEN = ["Quarterly EPS of $1.05 😀🚀📈 beat the 2019 forecast.",
          "龘 𠀋 鱻 — Сбербанк отчитался о прибыли.",
          "col1\tcol2\t\tcol3\r\n<0x41> <|endoftext|> <|pad|> <unk>"]


def _train_texts(finance_docs, general_docs) -> list[str]:
    return [d["text"] for d in finance_docs[:40]] + [d["text"] for d in general_docs[:25]]


@pytest.fixture(scope="module")
def unigram(finance_docs, general_docs) -> tuple[Tokenizer, T.TokenizerConfig]:
    cfg = T.TokenizerConfig(type="unigram", vocab_size=1200, shrinking_factor=0.5, n_sub_iterations=1)
    return T.train_tokenizer(_train_texts(finance_docs, general_docs), cfg), cfg


def _roundtrip(tok: Tokenizer, text: str) -> str:
    tok.encode_special_tokens = True
    return tok.decode(tok.encode(text, add_special_tokens=False).ids, skip_special_tokens=False)


def test_unigram_has_specials_bytes_and_exact_vocab(unigram):
    tok, cfg = unigram
    assert tok.get_vocab_size() == cfg.vocab_size
    assert (tok.token_to_id(T.EOS), tok.token_to_id(T.PAD), tok.token_to_id(T.UNK)) == (0, 1, 2)
    model = json.loads(tok.to_str())["model"]
    assert model["type"] == "Unigram" and model["byte_fallback"] is True
    assert all(tok.token_to_id(T.byte_piece(b)) is not None for b in range(256))


def test_unigram_round_trips_unseen_text_via_byte_fallback(unigram, general_docs):
    tok, _ = unigram
    for text in UNSEEN + [d["text"] for d in general_docs[100:105]]:
        assert _roundtrip(tok, text) == text
    ids = tok.encode("😀", add_special_tokens=False).ids
    assert [tok.id_to_token(i) for i in ids] == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]
    assert tok.token_to_id(T.UNK) not in tok.encode(UNSEEN[1], add_special_tokens=False).ids


def test_unigram_splits_every_digit_and_learns_multiword_pieces(unigram):
    tok, _ = unigram
    tokens = tok.encode("Revenue rose 12.5% to $84,310 million in 2019", add_special_tokens=False).tokens
    digits = [t for t in tokens if any(c.isdigit() for c in t)]
    assert digits == list("12584310" "2019")
    reserved = {T.byte_piece(b) for b in range(256)}
    vocab = [p for p in tok.get_vocab() if p not in reserved]
    assert all(len(p) == 1 for p in vocab if any(c.isdigit() for c in p))
    assert any(" " in p.strip(" ") for p in vocab), "no multi-word piece: the BloombergGPT chunks allow them"


def test_literal_special_text_is_not_an_end_of_document(unigram):
    tok, _ = unigram
    eos = T.eos_id(tok)
    ids = T.encode_documents(tok, ["before <|endoftext|> after", ""], eos, np.dtype(np.uint16))
    assert ids[0].dtype == np.uint16 and ids[0][-1] == eos and eos not in ids[0][:-1].tolist()
    assert ids[1].tolist() == [eos]


@pytest.mark.parametrize("kind", ["bpe", "gpt2"])
def test_byte_level_bpe_round_trips_and_digit_rule(kind, finance_docs, general_docs):
    cfg = T.TokenizerConfig(type=kind, vocab_size=600)
    tok = T.train_tokenizer(_train_texts(finance_docs, general_docs), cfg)
    assert tok.get_vocab_size() == 600 and tok.token_to_id(T.EOS) == 0 and tok.token_to_id(T.PAD) == 1
    for text in UNSEEN:
        assert _roundtrip(tok, text) == text
    digit_pieces = [p for p in tok.get_vocab() if sum(c.isdigit() for c in p) > 1]
    if kind == "bpe":
        assert digit_pieces == []
    else:  # GPT-2 keeps runs of digits together and learns merges of them from financial text
        assert digit_pieces


def test_saved_tokenizer_loads_with_tokenizers_and_transformers(unigram, tmp_path: Path):
    tok, cfg = unigram
    path = T.save_tokenizer(tok, tmp_path / "tok", cfg, {"sample": {}})
    loaded = Tokenizer.from_file(str(path))
    text = UNSEEN[0]
    assert loaded.encode(text).ids == tok.encode(text).ids
    training = json.loads((tmp_path / "tok" / "training.json").read_text())
    assert training["sha256"] == T.file_sha256(path) and training["vocab_size"] == cfg.vocab_size
    transformers = pytest.importorskip("transformers")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path))
    assert fast.decode(fast(text, add_special_tokens=False)["input_ids"]) == text
    fast_dir = transformers.PreTrainedTokenizerFast.from_pretrained(str(tmp_path / "tok"))
    assert fast_dir.eos_token == T.EOS and fast_dir.pad_token_id == 1


def test_sample_is_seeded_balanced_and_order_free(tmp_path: Path, finance_docs, general_docs):
    for name, docs, domain in (("fin", finance_docs, "domain"), ("gen", general_docs[:200], "general")):
        rows = [{"id": d["id"], "text": d["text"], "source": d["source"], "domain": domain, "meta": "{}"}
                for d in docs]
        write_parquet_file(str(tmp_path / name / "train-00000.parquet"), rows[: len(rows) // 2], DOC_SCHEMA)
        write_parquet_file(str(tmp_path / name / "train-00001.parquet"), rows[len(rows) // 2:], DOC_SCHEMA)
    files = T.stage_files([str(tmp_path / "fin"), str(tmp_path / "gen")])
    chosen, summary = T.draw_sample(files, 100_000, 0.5, seed=7)
    again, _ = T.draw_sample(list(reversed(files)), 100_000, 0.5, seed=7)
    other, _ = T.draw_sample(files, 100_000, 0.5, seed=8)
    assert chosen == again and chosen != other
    for side in ("domain", "general"):
        assert 50_000 <= summary[side]["sample_bytes"] < 50_000 + 20_000  # stops at the first doc past the budget
    texts = list(T.sample_texts(files, chosen))
    assert len(texts) == len(chosen) == summary["domain"]["sample_docs"] + summary["general"]["sample_docs"]


def test_cli_trains_from_stage_dirs(tmp_path: Path):
    rows = [{"id": d["id"], "text": d["text"], "source": d["source"], "domain": "domain", "meta": "{}"}
            for d in read_jsonl_gz(DATA / "finance" / "sec_10q_aapl.jsonl.gz")]
    write_parquet_file(str(tmp_path / "in" / "train-00000.parquet"), rows, DOC_SCHEMA)
    (tmp_path / "cfg.yaml").write_text("tokenizer:\n  type: bpe\n  vocab_size: 100000\n  sample_bytes: 50000\n")
    path = T.main(["--config", str(tmp_path / "cfg.yaml"), "--input", str(tmp_path / "in"),
                   "--output", str(tmp_path / "out"), "--vocab-size", "500"])
    tok = Tokenizer.from_file(str(path))
    assert tok.get_vocab_size() == 500
    info = json.loads((tmp_path / "out" / "training.json").read_text())
    assert info["config"]["vocab_size"] == 500 and info["sample"]["general"]["sample_docs"] == 0
    assert 25_000 <= info["sample"]["domain"]["sample_bytes"] < 50_000  # half of sample_bytes: domain share 0.5
    with pytest.raises(ValueError, match="unknown tokenizer config keys"):
        T.TokenizerConfig.from_dict({"type": "bpe", "vocab": 10})
