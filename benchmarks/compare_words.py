"""How closely ``filters.words.split_words`` reproduces spaCy's blank English tokenizer.

Run it with a Python that has spaCy (the datatrove peer venv), from the repository root:

    work/peers/dtvenv/bin/python benchmarks/compare_words.py --per-file 200

Prints, per file: documents whose token lists are identical, and the token-count error; then
the tokens most often produced by one tokenizer and not the other (to guide fixes).
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from filters.words import split_words  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input", default="../shared/corpora/general/*.jsonl.gz")
    ap.add_argument("--per-file", type=int, default=200, help="documents per file")
    ap.add_argument("--show", type=int, default=25, help="most frequent differences to print")
    args = ap.parse_args()
    import spacy

    nlp = spacy.blank("en")
    only_spacy: Counter = Counter()
    only_ours: Counter = Counter()
    for path in sorted(glob.glob(args.input)):
        same = n = tok_s = tok_o = 0
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                if n >= args.per_file:
                    break
                text = json.loads(line)["text"]
                nlp.max_length = len(text) + 10
                theirs = [t.text.strip() for t in nlp(text)]
                theirs = [t for t in theirs if t]
                ours = split_words(text)
                n += 1
                same += theirs == ours
                tok_s += len(theirs)
                tok_o += len(ours)
                if theirs != ours:
                    a, b = Counter(theirs), Counter(ours)
                    only_spacy.update(a - b)
                    only_ours.update(b - a)
        print(
            f"{os.path.basename(path):28s} docs {n:5d} identical {same / max(n, 1):6.1%} "
            f"tokens spacy {tok_s:9d} ours {tok_o:9d} ({(tok_o - tok_s) / max(tok_s, 1):+.3%})"
        )
    print("only spaCy:", only_spacy.most_common(args.show))
    print("only ours: ", only_ours.most_common(args.show))


if __name__ == "__main__":
    main()
