"""Bytes per token of the three tokenizer recipes on held-out domain and general text.

    python benchmarks/bench_tokenizer.py [--vocab 8192 16384] [--sample-mb 1.0] [--results benchmarks/RESULTS.md]

Each tokenizer (BloombergGPT-style Unigram, byte-level BPE with split digits, GPT-2's
byte-level BPE) is trained like ``make tokenizer`` (the settings of
configs/tokenizer/{unigram,bpe,gpt2}.yaml, the vocabulary of --vocab) on one seeded sample
of the embedded corpus (data/finance + data/general, cleaned like the clean stage, half
domain, half general by bytes). It is scored on documents it never saw: the documents of
../shared/corpora that are not in data/ (finance -> domain, general -> general), plus the
multilingual fortunes as a stress test of byte fallback. More bytes per token means
shorter sequences for the same text (cheaper training and a longer effective context).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import provenance  # noqa: E402
from core.documents import DOC_SCHEMA  # noqa: E402
from core.sections import replace_section  # noqa: E402
from filters.normalize import clean_text  # noqa: E402
from mixtures.tokenizer import (  # noqa: E402
    TYPES,
    TokenizerConfig,
    bytes_per_token,
    draw_sample,
    sample_texts,
    stage_files,
    train_tokenizer,
)
from pipelines.io import write_parquet_file  # noqa: E402

# this script's section of benchmarks/RESULTS.md
TITLE = "## Tokenizers: bytes per token on held-out text (`make bench-tokenizer`)"

CORPORA = ROOT.parent / "shared" / "corpora"
HELD_OUT_BYTES = 1_000_000  # per side


def read(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def held_out(folder: str, seen: set[str], limit: int) -> list[str]:
    """Cleaned texts of corpus documents not in the training corpus, by a fixed hash order."""
    docs = [d for p in sorted((CORPORA / folder).glob("*.jsonl.gz")) for d in read(p) if d["id"] not in seen]
    docs.sort(key=lambda d: hashlib.sha1(d["id"].encode()).hexdigest())
    out, total = [], 0
    for d in docs:
        if total >= limit:
            break
        text = clean_text(d["text"])
        if text:
            out.append(text)
            total += len(text.encode("utf-8"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, nargs="+", default=[8192, 16384])
    parser.add_argument("--sample-mb", type=float, default=1.0, help="training sample (MB), as configs/tokenizer/demo")
    parser.add_argument("--types", nargs="+", default=list(TYPES), choices=TYPES)
    parser.add_argument("--results", help=f"replace the '{TITLE}' section of this file (e.g. benchmarks/RESULTS.md); "
                        "without it the table is only printed")
    args = parser.parse_args()
    provenance.check_results(args.results)

    work = Path(tempfile.mkdtemp(prefix="bench_tokenizer_"))
    seen: set[str] = set()
    for folder, domain in (("finance", "domain"), ("general", "general")):
        rows = []
        for path in sorted((ROOT / "data" / folder).glob("*.jsonl.gz")):
            for d in read(path):
                seen.add(d["id"])
                text = clean_text(d["text"])
                if text:
                    rows.append({"id": d["id"], "text": text, "source": d["source"], "domain": domain, "meta": "{}"})
        write_parquet_file(str(work / folder / "train-00000.parquet"), rows, DOC_SCHEMA)
    files = stage_files([str(work / "finance"), str(work / "general")])
    chosen, summary = draw_sample(files, int(args.sample_mb * 1e6), 0.5, seed=1234)
    texts = list(sample_texts(files, chosen))
    if not CORPORA.is_dir():
        sys.exit(f"{CORPORA} is missing: no held-out text to score on")
    evals = {"domain (finance)": held_out("finance", seen, HELD_OUT_BYTES),
             "general": held_out("general", seen, HELD_OUT_BYTES),
             "multilingual": held_out("multilingual", seen, HELD_OUT_BYTES // 4)}
    drawn = sum(s["sample_bytes"] for s in summary.values())
    out = [f"Training sample: {drawn / 1e6:.2f} MB ({len(texts)} documents, "
           f"{summary['domain']['sample_bytes'] / drawn:.0%} domain); held out: "
           + ", ".join(f"{k} {sum(len(t.encode()) for t in v) / 1e6:.2f} MB" for k, v in evals.items()) + ".", "",
           "| tokenizer | vocab | train s | " + " | ".join(f"{k} bytes/token" for k in evals) + " |",
           "| --- | ---: | ---: | " + " | ".join("---:" for _ in evals) + " |"]
    print("\n".join(out), flush=True)
    for vocab in args.vocab:
        for kind in args.types:
            cfg = TokenizerConfig(type=kind, vocab_size=vocab)
            t0 = time.perf_counter()
            tok = train_tokenizer(texts, cfg)
            seconds = time.perf_counter() - t0
            scores = [bytes_per_token(tok, v) for v in evals.values()]
            label = {"unigram": "Unigram (BloombergGPT-style)", "bpe": "byte-level BPE, split digits",
                     "gpt2": "GPT-2 byte-level BPE (baseline)"}[kind]
            out.append(f"| {label} | {tok.get_vocab_size():,} | {seconds:.0f} | "
                       + " | ".join(f"{s:.2f}" for s in scores) + " |")
            print(out[-1], flush=True)
    if args.results:
        replace_section(args.results, TITLE, provenance.body("bench-tokenizer", provenance.method(__doc__),
                                                             "\n".join(out)), header=provenance.HEADER)
        print(f"wrote the '{TITLE}' section of {args.results}")


if __name__ == "__main__":
    main()
