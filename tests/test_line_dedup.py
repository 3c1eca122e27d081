"""Line-level dedup (``pipelines.dedup --line-dedup``) on real text with planted boilerplate.

Every stage run is checked against an independent reference (regex words, Python sets of
normalized lines): which lines go, which document keeps each, which documents are left empty.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.documents import schema_with
from filters import exact
from pipelines import dedup
from tests.test_dataflow_dry_run import DRY_RUN, assert_translated_and_packaged, offline  # noqa: F401 (a fixture)

SCHEMA = schema_with(("lang", pa.string()))
# Boilerplate as finance text repeats it: a safe-harbour sentence, a risk line, a wire byline.
SAFE_HARBOR = ("This release contains forward-looking statements within the meaning of the Private Securities "
               "Litigation Reform Act of 1995.")
RISK = "Past performance is no guarantee of future results, and the value of investments may fall."
BYLINE = "Reporting by the commodities desk in London; editing by the markets team."
MIN_WORDS = 5


def words(line: str) -> list[str]:
    return re.findall(r"[^\W_]+", line.lower())


def reference(docs: list[dict], min_docs: int, cross_source: bool) -> tuple[dict, int, dict]:
    """Line dedup done the obvious way: ``({(source, id): new text or None if emptied}, lines removed,
    {(scope, normalized line): documents})``. Keeper: the smallest (source rank, BLAKE2b-64 of source NUL id)."""
    def scope(d):
        return "*" if cross_source else d["source"]

    holders = defaultdict(set)
    for d in docs:
        rank = 0 if d["domain"] == "domain" else 1
        order = (rank, hashlib.blake2b(f"{d['source']}\0{d['id']}".encode(), digest_size=8).digest())
        for line in d["text"].split("\n"):
            if len(words(line)) >= MIN_WORDS:
                holders[(scope(d), " ".join(words(line)))].add((*order, d["source"], d["id"]))
    keeper = {k: min(v)[2:] for k, v in holders.items() if len(v) >= min_docs}
    out, removed = {}, 0
    for d in docs:
        kept, dropped = [], 0
        for line in d["text"].split("\n"):
            k = (scope(d), " ".join(words(line)))
            if k in keeper and keeper[k] != (d["source"], d["id"]):
                dropped += 1
            else:
                kept.append(line)
        removed += dropped
        empty = dropped and not any(len(words(line)) >= MIN_WORDS for line in kept)
        out[(d["source"], d["id"])] = None if empty else "\n".join(kept)
    return out, removed, {k: len(v) for k, v in holders.items() if len(v) >= min_docs}


def plant(text: str, line: str, where: int) -> str:
    lines = text.split("\n")
    lines.insert(where % (len(lines) + 1), line)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, finance_docs, general_docs):
    """A domain (reuters) and a general (bbc) stage directory, each in row groups of 3 so that a line
    and its keeper sit in different splits. SAFE_HARBOR in 3 reuters + 2 bbc documents, RISK in 1 + 1,
    BYLINE in 2 reuters, and one more bbc document made of nothing but a heading, SAFE_HARBOR and RISK."""
    root = tmp_path_factory.mktemp("line_dedup_in")
    fin = [dict(d) for d in finance_docs if len(d["text"].split()) >= 80][:9]
    gen = [dict(d) for d in general_docs if len(d["text"].split()) >= 150][:9]
    for i, d in enumerate(fin):
        d.update(source="reuters", domain="domain")
        if i < 3:
            d["text"] = plant(d["text"], SAFE_HARBOR, -1 - i)
        if i in (3, 4):
            d["text"] = plant(d["text"], BYLINE, 0)
        if i == 5:
            d["text"] = plant(d["text"], RISK, 2)
    for i, d in enumerate(gen):
        d.update(source="bbc", domain="general")
        if i < 2:
            d["text"] = plant(d["text"], SAFE_HARBOR, 1)
        if i == 2:
            d["text"] = plant(d["text"], RISK, -1)
    gen.append({"id": "bbc-boilerplate-only", "text": f"Important notice\n{SAFE_HARBOR}\n\n{RISK}\n", "source": "bbc",
                "domain": "general"})
    dirs = []
    for name, docs in (("finance", fin), ("general", gen)):
        rows = [{"id": d["id"], "text": d["text"], "source": d["source"], "domain": d["domain"], "meta": "{}",
                 "lang": "en"} for d in docs]
        (root / name).mkdir()
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), root / name / "train-00000-of-00001.parquet",
                       row_group_size=3)
        dirs.append(str(root / name))
    return dirs, fin + gen


def run(inputs, out, *extra):
    argv = [a for path in inputs for a in ("--input", path)]
    return dedup.main([*argv, "--output", str(out), "--split-mb", "0.001", *extra])


def kept_texts(out) -> dict:
    rows = pq.read_table(sorted(glob.glob(f"{out}/train-*.parquet"))).to_pylist()
    assert all(r["lang"] == "en" and r["meta"] == "{}" for r in rows)  # every column survives
    return {(r["source"], r["id"]): r["text"] for r in rows}


def duplicates(out) -> list[dict]:
    return pq.read_table(sorted(glob.glob(f"{out}/duplicates/part-*.parquet"))).to_pylist()


def test_line_keys_fold_case_punctuation_and_whitespace_and_skip_short_lines():
    text = f"{SAFE_HARBOR}\nShort heading\n  {SAFE_HARBOR.upper().replace(' ', '   ')} \n\n{RISK}"
    keys = exact.line_keys(text, MIN_WORDS)
    assert len(keys) == len(text.split("\n")) and keys[1] is None and keys[3] is None
    assert keys[0] == keys[2] != keys[4]
    assert keys == [exact.line_keys(line, MIN_WORDS)[0] for line in text.split("\n")]  # one pass == per line
    assert exact.line_keys(SAFE_HARBOR, MIN_WORDS, "reuters") != exact.line_keys(SAFE_HARBOR, MIN_WORDS, "bbc")
    assert exact.document_lines(text, MIN_WORDS) == [keys[0], keys[4]]
    new, removed = exact.remove_repeated_lines(text, lambda k: k != keys[0], MIN_WORDS)
    assert removed == 2 and new.split("\n") == ["Short heading", "", RISK]
    assert exact.has_dedup_line(new, MIN_WORDS) and not exact.has_dedup_line("Short heading\n\nYes", MIN_WORDS)


@pytest.mark.parametrize("min_docs, cross_source", [(2, True), (3, False)])
def test_repeated_lines_are_kept_once_as_the_reference_says(corpus, tmp_path, min_docs, cross_source):
    inputs, docs = corpus
    extra = ["--line-dedup", "--line-min-docs", str(min_docs)] + (["--cross-source"] if cross_source else [])
    stats = run(inputs, tmp_path / "out", *extra)
    expected, lines_removed, repeated = reference(docs, min_docs, cross_source)
    kept = kept_texts(tmp_path / "out")
    assert kept == {k: v for k, v in expected.items() if v is not None}
    emptied = {k for k, v in expected.items() if v is None}
    assert {(d["source"], d["id"]) for d in duplicates(tmp_path / "out")} == emptied
    assert all(d["reason"] == "line" for d in duplicates(tmp_path / "out"))
    # accounting: balanced, lines counted, and per source
    assert stats["balanced"] and stats["input"] == len(docs) == stats["output"] + sum(stats["removed"].values())
    assert stats["removed"] == ({"empty_after_line_dedup": len(emptied)} if emptied else {})
    counts = stats["counts"]
    assert counts["lines_removed"] == lines_removed > 0 and counts["repeated_lines"] == len(repeated)
    assert counts["documents_with_lines_removed"] == sum(
        1 for k, v in expected.items() if v is not None and v != next(d["text"] for d in docs
                                                                      if (d["source"], d["id"]) == k))
    assert sum(s.get("lines_removed", 0) for s in stats["by_source"].values()) == lines_removed
    assert stats["line_dedup"]["min_docs"] == min_docs
    # the most repeated lines with their text and document counts, most repeated first
    top = stats["top_repeated_lines"]
    assert [t["documents"] for t in top] == sorted((t["documents"] for t in top), reverse=True)
    assert sorted((" ".join(words(t["text"])), t["documents"]) for t in top) == sorted(
        (line, n) for (_, line), n in repeated.items())  # fewer than 20 here
    assert all(kept[(t["source"], t["kept"])].count(t["text"]) == 1 for t in top)
    on_disk = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert on_disk["top_repeated_lines"] == top and on_disk["balanced"]


def test_planted_boilerplate_survives_once_in_the_domain_source_and_emptied_document_goes(corpus, tmp_path):
    inputs, _ = corpus
    stats = run(inputs, tmp_path / "out", "--line-dedup", "--cross-source")
    kept = kept_texts(tmp_path / "out")
    holders = [k for k, text in kept.items() if SAFE_HARBOR in text]
    assert len(holders) == 1 and holders[0][0] == "reuters"  # the domain source ranks first
    assert sum(text.count(RISK) for text in kept.values()) == 1
    assert ("bbc", "bbc-boilerplate-only") not in kept
    assert stats["removed"]["empty_after_line_dedup"] == 1
    assert stats["top_repeated_lines"][0] == {"text": SAFE_HARBOR, "documents": 6, "kept": holders[0][1],
                                              "source": "reuters"}


def test_same_result_in_any_input_order_and_running_mode(corpus, tmp_path):
    inputs, _ = corpus
    a = run(inputs, tmp_path / "a", "--line-dedup", "--cross-source", "--direct_running_mode", "in_memory")
    b = run(inputs[::-1], tmp_path / "b", "--line-dedup", "--cross-source", "--direct_running_mode",
            "multi_processing", "--direct_num_workers", "2")
    assert kept_texts(tmp_path / "a") == kept_texts(tmp_path / "b")
    assert a == b


def test_off_by_default_changes_no_text(corpus, tmp_path):
    inputs, docs = corpus
    stats = run(inputs, tmp_path / "out", "--cross-source")
    assert kept_texts(tmp_path / "out") == {(d["source"], d["id"]): d["text"] for d in docs}
    assert "line_dedup" not in stats and "top_repeated_lines" not in stats
    assert "lines_removed" not in stats["counts"] and stats["removed"] == {}


def test_bad_line_settings_exit_2(corpus, tmp_path):
    inputs, _ = corpus
    with pytest.raises(SystemExit) as exc:
        run(inputs, tmp_path / "out", "--line-dedup", "--line-min-docs", "1")
    assert exc.value.code == 2


def test_line_dedup_graph_translates_for_dataflow(request, corpus, tmp_path, capsys):
    """The line-dedup graph (side inputs of the top lines) under --dry_run: translated and packaged,
    offline (the ``offline`` fixture of tests/test_dataflow_dry_run.py)."""
    jobs = request.getfixturevalue("offline")
    inputs, _ = corpus
    argv = [a for path in inputs for a in ("--input", path)]
    result = dedup.main([*argv, "--output", str(tmp_path / "out"), "--line-dedup", "--cross-source", *DRY_RUN])
    assert result == {"stage": "dedup", "dry_run": True} and "dedup: dry run" in capsys.readouterr().out
    job = jobs[-1]
    assert_translated_and_packaged(job)
    names = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    assert {"Line keys", "Repeated lines", "Top lines"} <= names
    assert not (tmp_path / "out").exists()


def test_table_rows_are_never_line_deduplicated(finance_docs, tmp_path):
    """Two real 10-Q notes share a table header and rows (``iPhone (1) | $51,982 | $61,104``) and a safe-harbour
    sentence: the sentence is kept once, every table line stays in both documents."""
    table = ("Net sales by category (in millions):\nThree Months Ended\nDecember 29, 2018 | December 30, 2017\n"
             "iPhone (1) | $51,982 | $61,104\nMac (1) | 7,416 | 6,824\nWearables, Home and Accessories (1)(2) | 7,308 "
             "| 5,481\nTotal net sales (4) | $84,310 | $88,293")
    texts = [d["text"] for d in finance_docs if len(d["text"].split()) >= 80][:2]
    docs = [{"id": f"note-{i}", "text": f"{text}\n{table}\n{SAFE_HARBOR}", "source": "sec", "domain": "domain",
             "meta": "{}", "lang": "en"} for i, text in enumerate(texts)]
    keys = exact.prose_line_keys(docs[0]["text"], MIN_WORDS, "")
    rows = docs[0]["text"].split("\n")
    assert keys[rows.index("iPhone (1) | $51,982 | $61,104")] is None  # 5 words, but a table row
    assert keys[rows.index(SAFE_HARBOR)] is not None
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(docs, schema=SCHEMA), tmp_path / "in" / "train-00000-of-00001.parquet")
    run([str(tmp_path / "in")], tmp_path / "out", "--line-dedup")
    kept = kept_texts(tmp_path / "out")
    assert len(kept) == 2 and all(table in text for text in kept.values())
    assert sum(SAFE_HARBOR in text for text in kept.values()) == 1
