"""Tokenizer training: BloombergGPT-style Unigram (digits, byte fallback) and the byte-level BPEs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from core.documents import DOC_SCHEMA
from mixtures import tokenizer as T
from mixtures import unigram as U
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


MERGED_TEXTS = 40, 80  # finance, general documents: ~220 KB, two chunks of chunk_bytes below


@pytest.fixture(scope="module")
def merged(finance_docs, general_docs) -> tuple[Tokenizer, T.TokenizerConfig, list[str], dict]:
    """Split-and-merge: two chunks trained in two worker processes, merged, pruned to 1,200."""
    texts = [d["text"] for d in finance_docs[:MERGED_TEXTS[0]]] + [d["text"] for d in general_docs[:MERGED_TEXTS[1]]]
    cfg = T.TokenizerConfig(type="unigram", vocab_size=1200, shrinking_factor=0.5, n_sub_iterations=1,
                            seed_size=50_000, chunk_bytes=sum(len(t.encode()) for t in texts) // 2 + 1, workers=2)
    lines: list[str] = []
    report: dict = {}
    tok = T.train_tokenizer(texts, cfg, progress=lines.append, report=report)
    return tok, cfg, lines, report


@pytest.fixture(params=["one_chunk", "split_and_merge"])
def trained(request) -> tuple[Tokenizer, T.TokenizerConfig]:
    """Both Unigram paths: every invariant below holds for each."""
    if request.param == "one_chunk":
        return request.getfixturevalue("unigram")
    tok, cfg, _, _ = request.getfixturevalue("merged")
    return tok, cfg


def _roundtrip(tok: Tokenizer, text: str) -> str:
    tok.encode_special_tokens = True
    return tok.decode(tok.encode(text, add_special_tokens=False).ids, skip_special_tokens=False)


def test_unigram_has_specials_bytes_and_exact_vocab(trained):
    tok, cfg = trained
    assert tok.get_vocab_size() == cfg.vocab_size
    assert (tok.token_to_id(T.EOS), tok.token_to_id(T.PAD), tok.token_to_id(T.UNK)) == (0, 1, 2)
    model = json.loads(tok.to_str())["model"]
    assert model["type"] == "Unigram" and model["byte_fallback"] is True
    assert all(tok.token_to_id(T.byte_piece(b)) is not None for b in range(256))


def test_unigram_round_trips_unseen_text_via_byte_fallback(trained, general_docs):
    tok, _ = trained
    for text in UNSEEN + [d["text"] for d in general_docs[100:105]]:
        assert _roundtrip(tok, text) == text
    ids = tok.encode("😀", add_special_tokens=False).ids
    assert [tok.id_to_token(i) for i in ids] == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]
    assert tok.token_to_id(T.UNK) not in tok.encode(UNSEEN[1], add_special_tokens=False).ids


def test_unigram_splits_every_digit_and_learns_multiword_pieces(trained):
    tok, _ = trained
    tokens = tok.encode("Revenue rose 12.5% to $84,310 million in 2019", add_special_tokens=False).tokens
    digits = [t for t in tokens if any(c.isdigit() for c in t)]
    assert digits == list("12584310" "2019")
    reserved = {T.byte_piece(b) for b in range(256)}
    vocab = [p for p in tok.get_vocab() if p not in reserved]
    assert all(len(p) == 1 for p in vocab if any(c.isdigit() for c in p))
    assert any(" " in p.strip(" ") for p in vocab), "no multi-word piece: the BloombergGPT chunks allow them"


def test_literal_special_text_is_not_an_end_of_document(trained):
    tok, _ = trained
    eos = T.eos_id(tok)
    ids = T.encode_documents(tok, ["before <|endoftext|> after", ""], eos, np.dtype(np.uint16))
    assert ids[0].dtype == np.uint16 and ids[0][-1] == eos and eos not in ids[0][:-1].tolist()
    assert ids[1].tolist() == [eos]


def test_unigram_has_no_duplicate_pieces_and_reserved_pieces_never_win(trained):
    tok, _ = trained
    doc = json.loads(tok.to_str())
    pieces = [p for p, _ in doc["model"]["vocab"]]
    assert len(pieces) == len(set(pieces)) == tok.get_vocab_size()
    reserved = {T.EOS, T.PAD, T.UNK} | {T.byte_piece(b) for b in range(256)}
    scores = dict(doc["model"]["vocab"])
    assert all(scores[p] == T.RESERVED_PIECE_SCORE for p in reserved)
    assert all(scores[p] > T.RESERVED_PIECE_SCORE for p in pieces if p not in reserved)
    assert [t["content"] for t in doc["added_tokens"]] == [T.EOS, T.PAD, T.UNK]
    assert all(t["special"] for t in doc["added_tokens"])


# Any string: emoji, CJK (in and outside the BMP), digits, controls, combining marks, and literal
# special-token / byte-piece text glued to anything.
ANY_TEXT = st.lists(st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8),
    st.text(st.sampled_from(list("0123456789 $.,%-abcXYZ")), max_size=12),
    st.sampled_from(["<|endoftext|>", "<|pad|>", "<unk>", "<0x41>", "😀", "龘", "𠀋", " net income", "2019"]),
), max_size=10).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=ANY_TEXT)
def test_unigram_round_trips_any_string(text):
    for tok in _ROUND_TRIP_TOKENIZERS:
        assert _roundtrip(tok, text) == text
        tokens = [t for t in tok.encode(text, add_special_tokens=False).tokens if t not in _BYTE_PIECES]
        assert all(len(t) == 1 for t in tokens if any(c in "0123456789" for c in t)), tokens
        assert T.eos_id(tok) not in tok.encode(text, add_special_tokens=False).ids


_ROUND_TRIP_TOKENIZERS: list[Tokenizer] = []
_BYTE_PIECES = {T.byte_piece(b) for b in range(256)}


@pytest.fixture(autouse=True, scope="module")
def _both_paths_for_hypothesis(unigram, merged):
    """hypothesis' @given tests cannot take function fixtures: hand them both tokenizers."""
    _ROUND_TRIP_TOKENIZERS[:] = [unigram[0], merged[0]]
    yield
    _ROUND_TRIP_TOKENIZERS.clear()


def test_split_and_merge_reports_chunks_and_merge_rounds(merged):
    _, _, lines, report = merged
    assert report["n_chunks"] == 2 and [sorted(c) for c in report["chunks"]] == [["cpu_s", "peak_rss_mb", "wall_s"]] * 2
    assert report["union_pieces"] > 1200 - 259 and report["merge_s"] >= 0
    assert lines[0].startswith("2 chunks of ~0.1 MB (chunk_bytes ") and lines[0].endswith("on 2 worker(s)")
    assert sum(1 for line in lines if " of 2 done: " in line and line.startswith("chunk ")) == 2
    assert any(line.startswith("merged 2 chunks: ") for line in lines)
    assert any(line.startswith("merge round 1 of ") and "projected to finish in ~" in line for line in lines)


def test_split_chunks_balances_bytes():
    rng = random.Random(3)
    texts = ["x" * rng.randint(100, 3000) for _ in range(400)]
    total = sum(map(len, texts))
    assert U.split_chunks(texts, total) == [list(range(400))]       # one chunk: no split
    chunks = U.split_chunks(texts, total // 3 + 1)
    assert len(chunks) == 3 and sorted(i for c in chunks for i in c) == list(range(400))
    loads = [sum(len(texts[i]) for i in c) for c in chunks]
    assert max(loads) - min(loads) <= 3000
    assert len(U.split_chunks(texts, int(total / 2.03))) == 2  # 1.5% over 2 chunks: no third
    assert len(U.split_chunks(texts, int(total / 2.2))) == 3


def test_merge_weights_each_chunk_by_its_bytes():
    pieces, scores = U.merge_vocabularies([[("a", np.log(0.5)), ("b", np.log(0.5))], [("a", 0.0)]], [3, 1])
    assert pieces == ["a", "b"]
    assert np.allclose(np.exp(scores), [0.75 * 0.5 + 0.25 * 1.0, 0.75 * 0.5])


def test_alternative_lengths_spell_each_piece_without_itself():
    pieces = ["a", "b", " ", "ab", "ab ab", " ab", "abab"]
    scores = np.log(np.full(len(pieces), 1 / len(pieces)))
    # "ab ab" = "ab" + " ab" (not itself), " ab" = " " + "ab", "abab" = "ab" + "ab"
    assert U.alternative_lengths(pieces, scores).tolist() == [1, 1, 1, 2, 2, 2, 2]


def test_unigram_training_is_byte_identical(unigram, finance_docs, general_docs):
    """HF's trainer sums in the order of a randomly seeded HashMap, and puts dropped characters back in
    random order: two trainings in one process (two HashMap seeds) must still give the same bytes."""
    tok, cfg = unigram
    again = T.train_tokenizer(_train_texts(finance_docs, general_docs), cfg)
    assert again.to_str() == tok.to_str()


def test_unigram_pieces_are_ordered_by_rounded_score_then_piece(trained):
    tok, cfg = trained
    pieces = U.learned_pieces(tok, T.special_tokens("unigram"))
    assert all(sc == round(sc, U.SCORE_DECIMALS) for _, sc in pieces)
    keys = [(-sc, p) for p, sc in pieces]
    assert keys == sorted(keys)
    assert len({sc for _, sc in pieces}) < len(pieces)  # ties exist: their order is the piece's


def test_assemble_ignores_input_order_float_noise_and_put_back_characters(finance_docs):
    """The same pieces in another order, with scores off by 1e-12 (HF's run-to-run noise) and the put-back
    characters' ladder (min + k x 1e-4) dealt out in another order -> the same tokenizer bytes."""
    s = U.UnigramSettings(vocab_size=U.N_BYTES + 3 + 40, specials=tuple(T.special_tokens("unigram")), unk=T.UNK)
    words = sorted({w for d in finance_docs[:20] for w in d["text"].split() if w.isalpha()})[:37]
    rng = random.Random(7)
    learned = [(w, -rng.uniform(3.0, 9.0)) for w in words]
    low = min(sc for _, sc in learned)
    ladder = ["Q", "X", "Z"]

    def variant(seed: int) -> list[tuple[str, float]]:
        r = random.Random(seed)
        chars = ladder[:]
        r.shuffle(chars)
        pieces = [(w, sc + r.uniform(-1e-12, 1e-12)) for w, sc in learned]
        pieces += [(c, low + k * U.HF_MIN_SCORE_PENALTY_DELTA) for k, c in enumerate(chars)]
        r.shuffle(pieces)
        return U.canonical_pieces(pieces)

    built = []
    for seed in (1, 2, 3):
        pieces = variant(seed)
        built.append(U.assemble([p for p, _ in pieces], [sc for _, sc in pieces], s).to_str())
    assert built[0] == built[1] == built[2]
    vocab = dict(map(tuple, json.loads(built[0])["model"]["vocab"]))
    assert {vocab[c] for c in ladder} == {round(low, U.SCORE_DECIMALS)}


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
    # No general input: its half is filled from the domain side (sample_short_side: fill, the default).
    assert 50_000 <= info["sample"]["domain"]["sample_bytes"] < 60_000
    assert info["sample"]["general"]["short_bytes"] == 25_000 and info["sample"]["domain"]["filled_bytes"] > 0
    (tmp_path / "fail.yaml").write_text("tokenizer:\n  type: bpe\n  sample_bytes: 50000\n  sample_short_side: fail\n")
    with pytest.raises(SystemExit) as exc:
        T.main(["--config", str(tmp_path / "fail.yaml"), "--input", str(tmp_path / "in"),
                "--output", str(tmp_path / "o2")])
    assert exc.value.code == 2 and not (tmp_path / "o2").exists()
    with pytest.raises(ValueError, match="unknown tokenizer config keys"):
        T.TokenizerConfig.from_dict({"type": "bpe", "vocab": 10})


def _two_sides(tmp_path: Path, finance_docs, general_docs) -> list[str]:
    for name, docs, domain in (("fin", finance_docs, "domain"), ("gen", general_docs[:200], "general")):
        rows = [{"id": d["id"], "text": d["text"], "source": d["source"], "domain": domain, "meta": "{}"}
                for d in docs]
        write_parquet_file(str(tmp_path / name / "train-00000.parquet"), rows, DOC_SCHEMA)
    return T.stage_files([str(tmp_path / "fin"), str(tmp_path / "gen")])


def test_a_short_side_is_filled_from_the_other_or_fails_clearly(tmp_path: Path, finance_docs, general_docs):
    files = _two_sides(tmp_path, finance_docs, general_docs)
    domain_bytes = sum(len(d["text"].encode()) for d in finance_docs)
    assert domain_bytes < 200_000  # the domain side cannot give half of 400 KB
    chosen, summary = T.draw_sample(files, 400_000, 0.5, seed=7, short_side="fill")
    d, g = summary["domain"], summary["general"]
    assert d["sample_bytes"] == d["available_bytes"] == domain_bytes and d["short_bytes"] == 200_000 - domain_bytes
    assert 400_000 <= d["sample_bytes"] + g["sample_bytes"] < 410_000  # stops at the first doc past the total
    assert g["filled_bytes"] > d["short_bytes"] - 10_000 and g["short_bytes"] == 0
    notes, error = T.sample_problems(summary, 400_000, "fill")
    assert error is None and "short of the 0.20 MB of its share" in notes[0] and "from the general side" in notes[0]

    _, accepted = T.draw_sample(files, 400_000, 0.5, seed=7, short_side="accept")
    assert accepted["general"]["filled_bytes"] == 0 and 200_000 <= accepted["general"]["sample_bytes"] < 210_000
    assert T.sample_problems(accepted, 400_000, "accept")[1] is None
    _, failing = T.draw_sample(files, 400_000, 0.5, seed=7, short_side="fail")
    error = T.sample_problems(failing, 400_000, "fail")[1]
    assert "the domain side holds" in error and "sample_short_side is fail" in error

    _, everything = T.draw_sample(files, 10**9, 0.5, seed=7, short_side="fill")  # more than the inputs hold
    assert sum(s["sample_bytes"] for s in everything.values()) == sum(s["available_bytes"] for s in everything.values())
    error = T.sample_problems(everything, 10**9, "fill")[1]
    assert "less than sample_bytes" in error and "accept" in error
    assert T.sample_problems(everything, 10**9, "accept")[1] is None
