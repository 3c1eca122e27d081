"""Train the tokenizer on a sample of curated domain + general documents (HF ``tokenizers``).

    python -m mixtures.tokenizer --config configs/tokenizer/unigram.yaml \
        --input work/dedup/finance --input work/dedup/general --output work/tokenizer [--vocab-size N]

Three recipes (``type`` in the config):

- ``unigram``: BloombergGPT (Wu et al. 2023, Sec. 2.3). A Unigram LM (Kudo 2018) over
  pre-tokenized chunks ``[ A-Za-z]+|[0-9]|[^A-Za-z0-9]+``: letters *with spaces* form one
  chunk, so multi-word pieces can be learned ("information density"), every digit is its
  own chunk (PaLM, Chowdhery et al. 2022), and nothing mixes letters with punctuation.
  Byte fallback (256 ``<0xNN>`` pieces) makes every string representable without a
  byte-level alphabet; no normalizer, so decode(encode(text)) == text.
- ``bpe``: byte-level BPE (GPT-2 pre-tokenizer regex) with digits split one by one
  (the Llama / PaLM choice): the usual modern alternative.
- ``gpt2``: GPT-2's byte-level BPE (Radford et al. 2019) as is, trained the same way:
  the baseline every tokenizer is compared with.

Every tokenizer has the specials ``<|endoftext|>`` (end of document, id 0) and ``<|pad|>``
(id 1); Unigram also has ``<unk>`` (id 2, never produced thanks to byte fallback). The
output directory holds ``tokenizer.json`` (``tokenizers.Tokenizer.from_file``),
``tokenizer_config.json`` + ``special_tokens_map.json`` (so
``transformers.PreTrainedTokenizerFast.from_pretrained(DIR)`` works) and ``training.json``
(the config and the sample that was drawn).

The sample is drawn per domain by a seeded hash of ``(source, id)``: the same documents
whatever the file order, and a fixed share of domain text (default 0.5) so that neither
side's vocabulary dominates. The trainers are multi-threaded (Rayon); their result does
not depend on the thread count.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from pipelines import DOCS_GLOB, fail, from_dict, read_yaml  # the package's __init__ only: no Beam

EOS = "<|endoftext|>"
PAD = "<|pad|>"
UNK = "<unk>"
TYPES = ("unigram", "bpe", "gpt2")
# BloombergGPT (Wu et al. 2023), Sec. 2.3: the pre-tokenization regular expression.
BLOOMBERG_CHUNKS = r"[ A-Za-z]+|[0-9]|[^A-Za-z0-9]+"
N_BYTES = 256  # byte-fallback pieces <0x00> .. <0xFF>
# Score of the byte and special pieces inside the Unigram model: far below any learned piece
# (and below the unknown-character penalty, min score - 10), so that the Viterbi search never
# spells literal text such as "<0x41>" or "<|endoftext|>" with them.
RESERVED_PIECE_SCORE = -1.0e6


@dataclass
class TokenizerConfig:
    """What to train. Sizes: ``vocab_size`` in tokens (specials and byte pieces included),
    ``sample_bytes`` in UTF-8 bytes of document text drawn from the inputs."""

    type: str = "unigram"
    vocab_size: int = 131072          # BloombergGPT: 2**17
    sample_bytes: int = 1_000_000_000
    sample_domain_share: float = 0.5  # fraction of the sample's bytes drawn from domain documents
    seed: int = 1234
    max_piece_length: int = 16        # Unigram: longest piece in characters (sentencepiece default)
    shrinking_factor: float = 0.75    # Unigram: pieces kept per EM round (sentencepiece default)
    n_sub_iterations: int = 2         # Unigram: EM steps per round (sentencepiece default)
    min_frequency: int = 2            # BPE: merges seen fewer times are not learned

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"tokenizer type must be one of {TYPES}, got {self.type!r}")
        minimum = N_BYTES + 8 if self.type == "unigram" else 300
        if self.vocab_size < minimum:
            raise ValueError(f"vocab_size {self.vocab_size} is too small for {self.type} (>= {minimum})")
        if not 0.0 <= self.sample_domain_share <= 1.0:
            raise ValueError(f"sample_domain_share must be in [0, 1], got {self.sample_domain_share}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenizerConfig:
        return from_dict(cls, d, "tokenizer config")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TokenizerConfig:
        """Read a YAML file: its ``tokenizer:`` section, or its top level when there is none."""
        doc = read_yaml(path)
        return cls.from_dict(doc.get("tokenizer", doc))


def special_tokens(kind: str) -> list[str]:
    return [EOS, PAD, UNK] if kind == "unigram" else [EOS, PAD]


def byte_piece(b: int) -> str:
    return f"<0x{b:02X}>"


def new_tokenizer(cfg: TokenizerConfig) -> tuple[Tokenizer, Any]:
    """An untrained tokenizer and its trainer for ``cfg``."""
    specials = special_tokens(cfg.type)
    if cfg.type == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(BLOOMBERG_CHUNKS), behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),  # already isolated by the regex; explicit
        ])
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
        trainer = trainers.UnigramTrainer(
            vocab_size=cfg.vocab_size - N_BYTES, special_tokens=specials, unk_token=UNK,
            max_piece_length=cfg.max_piece_length, shrinking_factor=cfg.shrinking_factor,
            n_sub_iterations=cfg.n_sub_iterations, show_progress=False)
        return tok, trainer
    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if cfg.type == "bpe":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, special_tokens=specials,
                                  min_frequency=cfg.min_frequency, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    return tok, trainer


def add_byte_fallback(tok: Tokenizer) -> Tokenizer:
    """Unigram -> Unigram with the 256 ``<0xNN>`` pieces and ``byte_fallback`` on.

    HF's Unigram trainer does not create byte pieces (sentencepiece's ``--byte_fallback``
    does); we append them after training, and move them and the specials to
    :data:`RESERVED_PIECE_SCORE` (the trainer gives specials score 0, the best of all).
    """
    doc = json.loads(tok.to_str())
    model = doc["model"]
    specials = {t["content"] for t in doc["added_tokens"]}
    vocab = [[piece, RESERVED_PIECE_SCORE if piece in specials else score] for piece, score in model["vocab"]]
    have = {piece for piece, _ in vocab}
    vocab += [[byte_piece(b), RESERVED_PIECE_SCORE] for b in range(N_BYTES) if byte_piece(b) not in have]
    model["vocab"], model["byte_fallback"] = vocab, True
    return Tokenizer.from_str(json.dumps(doc, ensure_ascii=False))


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig) -> Tokenizer:
    """Train on ``texts`` (any iterable of documents) following ``cfg``."""
    tok, trainer = new_tokenizer(cfg)
    tok.train_from_iterator(texts, trainer=trainer)
    if cfg.type == "unigram":
        tok = add_byte_fallback(tok)
    return tok


def eos_id(tok: Tokenizer) -> int:
    i = tok.token_to_id(EOS)
    if i is None:
        raise ValueError(f"tokenizer has no {EOS} token")
    return int(i)


def encode_documents(tok: Tokenizer, texts: list[str], eos: int, dtype: np.dtype | None = None) -> list[np.ndarray]:
    """Token ids of each text followed by the end-of-document id, one array per text.

    Uses ``encode_batch_fast`` (no character offsets) when the installed ``tokenizers`` has
    it. Literal special-token text inside a document (``"<|endoftext|>"``) is encoded as
    plain text, so the EOS id only ever marks a document boundary.
    """
    tok.encode_special_tokens = True
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    dtype = dtype or np.dtype(np.int64)
    out = []
    for enc in encode(texts, add_special_tokens=False):
        ids = enc.ids
        arr = np.empty(len(ids) + 1, dtype=dtype)
        arr[:-1] = ids
        arr[-1] = eos
        out.append(arr)
    return out


def bytes_per_token(tok: Tokenizer, texts: list[str], batch: int = 256) -> float:
    """UTF-8 bytes of ``texts`` per token (no EOS): higher means denser, shorter sequences."""
    tok.encode_special_tokens = True
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_tokens = sum(len(e.ids) for i in range(0, len(texts), batch)
                   for e in tok.encode_batch(texts[i:i + batch], add_special_tokens=False))
    return n_bytes / max(n_tokens, 1)


# ----------------------------------------------------------------------------- the sample

def _doc_hash(seed: int, source: str, doc_id: str) -> int:
    h = hashlib.blake2b(f"{seed}\x00{source}\x00{doc_id}".encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def stage_files(inputs: Iterable[str]) -> list[str]:
    """``train-*.parquet`` of stage directories (or explicit Parquet files), sorted."""
    files: set[str] = set()
    for item in inputs:
        found = sorted(glob.glob(os.path.join(item, DOCS_GLOB))) if os.path.isdir(item) else glob.glob(item)
        if not found:
            raise FileNotFoundError(f"input {item!r} has no {DOCS_GLOB} files")
        files.update(found)
    return sorted(files)


def _iter_docs(files: list[str], columns: list[str]) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024, columns=columns):
            yield from batch.to_pylist()


def draw_sample(files: list[str], sample_bytes: int, domain_share: float, seed: int
                ) -> tuple[set[tuple[str, str]], dict[str, Any]]:
    """Choose ``(source, id)`` of the documents to train on: per domain, lowest seeded hash
    first, until that domain's share of ``sample_bytes`` is reached. Returns the keys and a
    summary (bytes and documents per domain, available and drawn)."""
    candidates: dict[str, list[tuple[int, int, str, str]]] = {"domain": [], "general": []}
    for doc in _iter_docs(files, ["id", "source", "domain", "text"]):
        side = "domain" if doc["domain"] == "domain" else "general"
        n = len(doc["text"].encode("utf-8", "surrogatepass"))
        candidates[side].append((_doc_hash(seed, doc["source"], doc["id"]), n, doc["source"], doc["id"]))
    budget = {"domain": sample_bytes * domain_share, "general": sample_bytes * (1.0 - domain_share)}
    chosen: set[tuple[str, str]] = set()
    summary: dict[str, Any] = {}
    for side, docs in candidates.items():
        docs.sort()
        taken = 0
        n_docs = 0
        for _, n, source, doc_id in docs:
            if taken >= budget[side]:
                break
            chosen.add((source, doc_id))
            taken += n
            n_docs += 1
        summary[side] = {"available_bytes": sum(d[1] for d in docs), "available_docs": len(docs),
                         "sample_bytes": taken, "sample_docs": n_docs}
    return chosen, summary


def sample_texts(files: list[str], chosen: set[tuple[str, str]]) -> Iterator[str]:
    for doc in _iter_docs(files, ["id", "source", "text"]):
        if (doc["source"], doc["id"]) in chosen:
            yield doc["text"]


# ----------------------------------------------------------------------------- saving

def save_tokenizer(tok: Tokenizer, out_dir: str | os.PathLike, cfg: TokenizerConfig,
                   info: dict[str, Any] | None = None) -> Path:
    """Write ``tokenizer.json`` + the transformers side files + ``training.json``; returns the json path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tokenizer.json"
    tok.save(str(path), pretty=False)
    specials = {"eos_token": EOS, "bos_token": EOS, "pad_token": PAD}
    if cfg.type == "unigram":
        specials["unk_token"] = UNK
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
              "model_max_length": 1_000_000_000, **specials}
    for name, obj in (("tokenizer_config.json", config), ("special_tokens_map.json", specials),
                      ("training.json", {"config": asdict(cfg), "vocab_size": tok.get_vocab_size(),
                                         "sha256": file_sha256(path), **(info or {})})):
        (out / name).write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    return path


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_tokenizer_file(path: str | os.PathLike) -> Path:
    """A tokenizer directory (from this module) or a ``tokenizer.json`` file -> the json file."""
    p = Path(path)
    return p / "tokenizer.json" if p.is_dir() else p


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--config", required=True, help="tokenizer YAML (configs/tokenizer/*.yaml)")
    parser.add_argument("--input", action="append", required=True,
                        help="curated stage directory (train-*.parquet) or Parquet glob; repeatable")
    parser.add_argument("--output", required=True, help="output directory (tokenizer.json and side files)")
    parser.add_argument("--type", choices=TYPES, help="override the config's type")
    parser.add_argument("--vocab-size", type=int, help="override the config's vocab_size")
    parser.add_argument("--sample-bytes", type=int, help="override the config's sample_bytes")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    args = parser.parse_args(argv)
    try:
        raw = asdict(TokenizerConfig.from_yaml(args.config))
        for key in ("type", "vocab_size", "sample_bytes", "seed"):
            if getattr(args, key) is not None:
                raw[key] = getattr(args, key)
        cfg = TokenizerConfig.from_dict(raw)
        files = stage_files(args.input)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    t0 = time.perf_counter()
    chosen, summary = draw_sample(files, cfg.sample_bytes, cfg.sample_domain_share, cfg.seed)
    if not chosen:
        fail("the inputs hold no documents to train a tokenizer on")
    tok = train_tokenizer(sample_texts(files, chosen), cfg)
    seconds = time.perf_counter() - t0
    path = save_tokenizer(tok, args.output, cfg, {"sample": summary, "inputs": list(args.input),
                                                  "train_seconds": round(seconds, 1)})
    drawn = sum(s["sample_bytes"] for s in summary.values())
    print(f"tokenizer: {cfg.type}, vocab {tok.get_vocab_size():,}, trained on {drawn / 1e6:.2f} MB "
          f"({summary['domain']['sample_bytes'] / max(drawn, 1):.0%} domain) in {seconds:.1f} s -> {path}")
    return path


if __name__ == "__main__":
    main()
