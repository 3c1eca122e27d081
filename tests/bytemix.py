"""A byte-level mixture directory from raw ``.jsonl.gz`` corpora, for tests, benchmarks and demos.

Same layout as the mixer's output (``train/``, ``val_domain/``, ``val_general/``,
``manifest.json``) but with the simplest possible tokenizer: each UTF-8 byte is a token
(ids 0-255) and ``EOS_ID = 256`` ends every document, so ``vocab_size = 257``. It lets the
trainer be exercised on real text without the curation pipeline or a trained tokenizer.
The real mixture comes from ``mixtures/mix.py``.

``python -m tests.bytemix OUT --domain a.jsonl.gz ... --general b.jsonl.gz ... --max-bytes 2000000``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path

import numpy as np

from core.cli import fail
from mixtures.shards import write_shard

EOS_ID = 256
VOCAB_SIZE = 257


def read_texts(path: str | os.PathLike, max_bytes: int) -> list[str]:
    """Leading documents of a ``.jsonl.gz`` corpus until ``max_bytes`` of UTF-8 text."""
    out, total = [], 0
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"]
            out.append(text)
            total += len(text.encode("utf-8"))
            if total >= max_bytes:
                break
    return out


def encode(text: str) -> np.ndarray:
    return np.append(np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16), EOS_ID)


def build_byte_mixture(out_dir: str | os.PathLike, domain: list[str], general: list[str], max_bytes: int,
                       val_fraction: float = 0.1) -> dict:
    """Write a byte-level mixture; every ``1/val_fraction``-th document of each side is held out."""
    out = Path(out_dir)
    every = max(2, round(1 / val_fraction))
    train_docs: list[np.ndarray] = []
    manifest = {"tokenizer": None, "vocab_size": VOCAB_SIZE, "eos_id": EOS_ID, "sources": {},
                "val_bytes_per_token": {}, "note": "byte-level mixture (tests.bytemix), not the mixer's"}
    side_tokens = {}
    for side, files in (("domain", domain), ("general", general)):
        val_docs, val_bytes = [], 0
        per_file = max_bytes // max(1, len(domain) + len(general))
        for path in files:
            name = Path(path).name.split(".")[0]
            docs = [encode(t) for t in read_texts(path, per_file)]
            held = docs[::every]
            kept = [d for i, d in enumerate(docs) if i % every]
            val_docs += held
            val_bytes += sum(len(d) - 1 for d in held)
            train_docs += kept
            n = int(sum(len(d) for d in kept))
            side_tokens[side] = side_tokens.get(side, 0) + n
            manifest["sources"][name] = {"domain": side == "domain", "path": str(path), "available_tokens": n,
                                         "sampled_tokens": n, "epochs": 1.0}
        split = f"val_{side}"
        n_val = write_shard(out / split / "part-00000", val_docs, VOCAB_SIZE)
        manifest["val_bytes_per_token"][split] = val_bytes / n_val
    # Interleave domain and general documents deterministically, as a mixture would.
    order = np.random.default_rng(0).permutation(len(train_docs))
    n_train = write_shard(out / "train" / "part-00000", [train_docs[i] for i in order], VOCAB_SIZE)
    total = sum(side_tokens.values())
    manifest.update({"train_tokens": n_train, "domain_share_actual": side_tokens.get("domain", 0) / max(1, total)})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--domain", nargs="+", required=True)
    p.add_argument("--general", nargs="+", required=True)
    p.add_argument("--max-bytes", type=int, default=2_000_000)
    a = p.parse_args(argv)
    try:
        m = build_byte_mixture(a.out, a.domain, a.general, a.max_bytes)
    except (OSError, ValueError) as exc:
        fail(f"tests.bytemix: {exc}")
    print(json.dumps({k: m[k] for k in ("train_tokens", "domain_share_actual", "val_bytes_per_token")}))


if __name__ == "__main__":
    main()
