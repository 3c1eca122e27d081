"""Benchmark decontamination: evaluation text planted in real documents is found (and the filter
stage removes those documents as ``contaminated``), near-misses sharing 12 words are not."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.documents import DOC_SCHEMA
from filters.decontaminate import ContaminationIndex, ngram_hashes, word_hashes, words
from pipelines import filter as stage
from tests.conftest import DATA, read_jsonl_gz

RULES_OFF = ("langid: {enabled: false}\ngopher_repetition: {enabled: false}\ngopher_quality: {enabled: false}\n"
             "c4: {enabled: false}\nfineweb: {enabled: false}\n")


def sentences_of(docs: list[dict], min_words: int = 20, max_words: int = 45) -> list[str]:
    """Real sentences long enough to be evaluation texts (questions/passages of a finance benchmark)."""
    out = []
    for d in docs:
        for s in d["text"].replace("\n", " ").split(". "):
            if min_words <= len(s.split()) <= max_words:
                out.append(s.strip() + ".")
    return out


@pytest.fixture(scope="module")
def eval_texts() -> list[str]:
    """Evaluation texts: real sentences of the 10-Q notes (not part of the training documents)."""
    return sentences_of(read_jsonl_gz(DATA / "finance" / "sec_10q_aapl.jsonl.gz"))[:12]


@pytest.fixture(scope="module")
def documents() -> list[dict]:
    return read_jsonl_gz(DATA / "finance" / "reuters_finance.jsonl.gz")[:30]


def plant(doc_text: str, snippet: str) -> str:
    """``snippet`` inserted in the middle of a real document, at a word boundary."""
    ws = doc_text.split(" ")
    mid = len(ws) // 2
    return " ".join(ws[:mid] + [snippet] + ws[mid:])


def near_miss(text: str, shared: int = 12) -> str:
    """The first ``shared`` words of an evaluation text (as the index counts words: "Company's" is
    two), then different words: one 12-gram in common."""
    return " ".join(words(text)[:shared]) + " bananas ostriches"


def test_planted_text_is_found_whatever_the_case_and_punctuation(eval_texts, documents):
    index = ContaminationIndex.build({"10q_notes": eval_texts})
    assert index.find(documents[0]["text"]) is None
    target = eval_texts[3]
    shouted = plant(documents[0]["text"], target.upper().replace(",", " ,  "))
    match = index.find(shouted)
    assert match is not None and match.eval_set == "10q_notes"
    assert match.words == " ".join(words(target)[:13])
    # a 13-word run from the middle of an evaluation text is enough
    middle = " ".join(target.split()[4:17])
    assert index.find(plant(documents[1]["text"], middle)) is not None


def test_near_miss_with_twelve_shared_words_is_not_contaminated(eval_texts, documents):
    index = ContaminationIndex.build({"10q_notes": eval_texts})
    for text, doc in zip(eval_texts, documents):
        assert len(words(near_miss(text))) == 14
        assert index.find(plant(doc["text"], near_miss(text))) is None
    # the same check one word longer: contaminated
    assert index.find(plant(documents[0]["text"], near_miss(eval_texts[0], 13))) is not None


def test_short_texts_are_matched_whole_and_very_short_ones_skipped():
    index = ContaminationIndex.build({"qa": ["What was Apple's gross margin in fiscal 2018?",  # 9 words
                                             "Net sales rose."]}, ngram=13, min_words=8)
    assert index.summary["qa"] == {"texts": 2, "ngrams": 1, "too_short": 1}
    assert index.find("Analysts asked: what was apple s gross margin in fiscal 2018, and why?") is not None
    assert index.find("what was apple s gross margin in fiscal") is None  # 8 of the 9 words
    assert index.find("Net sales rose. Net sales rose.") is None


def test_index_holds_ten_bytes_per_ngram_and_first_set_wins(eval_texts):
    index = ContaminationIndex.build({"a": eval_texts, "b": eval_texts[:2]})
    expected = sum(len(set(ngram_hashes(word_hashes(words(t)), 13).tolist())) for t in eval_texts)
    assert index.n_ngrams <= expected and index.nbytes == 10 * index.n_ngrams
    assert index.find(eval_texts[0]).eval_set == "a"


def test_hashes_are_the_same_in_another_process():
    """The launcher builds the index, workers hash documents: the hash must not depend on the process."""
    here = word_hashes(["net", "income", "é"]).tolist()
    code = "from filters.decontaminate import word_hashes; print(word_hashes(['net', 'income', 'é']).tolist())"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=DATA.parent).stdout
    assert json.loads(there) == here


# ----------------------------------------------------------------------------- the stage


@pytest.fixture(scope="module")
def planted(tmp_path_factory, eval_texts, documents):
    """A clean-stage directory: 30 real Reuters stories, 6 with an evaluation text planted, 6 with a
    12-word near-miss; the evaluation set as JSON Lines (question + answer fields)."""
    root = tmp_path_factory.mktemp("decon")
    rows, expect = [], {}
    for i, doc in enumerate(documents):
        text, kind = doc["text"], "clean"
        if i % 5 == 0:
            text, kind = plant(text, eval_texts[i // 5]), "planted"
        elif i % 5 == 1:
            text, kind = plant(text, near_miss(eval_texts[i // 5 + 6])), "near_miss"
        rows.append({"id": doc["id"], "text": text, "source": "reuters", "domain": "domain", "meta": "{}"})
        expect[doc["id"]] = kind
    (root / "clean").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), root / "clean" / "train-00000.parquet")
    with open(root / "finqa.jsonl", "w", encoding="utf-8") as f:
        for t in eval_texts:
            half = len(t.split()) // 2
            f.write(json.dumps({"question": " ".join(t.split()[:half]), "answer": " ".join(t.split()[half:]),
                                "context": t}) + "\n")
    return root, expect


def test_stage_removes_planted_documents_and_keeps_near_misses(planted):
    root, expect = planted
    config = root / "decon.yaml"
    config.write_text(RULES_OFF + f"decontaminate:\n  sets:\n    - {{name: finqa, path: {root / 'finqa.jsonl'}, "
                      "fields: [context]}\n", encoding="utf-8")
    out = root / "out"
    stats = stage.main(["--input", str(root / "clean"), "--output", str(out), "--config", str(config)])
    assert stats["balanced"] and stats["input"] == 30
    assert stats["removed"] == {"contaminated": 6} and stats["counts"]["contaminated/finqa"] == 6
    removed = [json.loads(line) for p in sorted((out / "removed").glob("*.jsonl")) for line in open(p)]
    assert {r["id"] for r in removed} == {i for i, kind in expect.items() if kind == "planted"}
    assert all(r["eval_set"] == "finqa" and len(r["matched"].split()) == 13 for r in removed)
    kept = [r for p in sorted(out.glob("train-*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert {r["id"] for r in kept} == {i for i, kind in expect.items() if kind != "planted"}
    about = json.loads((out / "filter_config.json").read_text())["decontamination"]
    assert about["sets"]["finqa"]["texts"] == 12 and about["index_bytes"] == 10 * about["ngrams"]


def test_stage_reads_an_evaluation_set_through_datasets_and_each_field(planted, tmp_path):
    """``hf:`` loads with ``datasets.load_dataset`` (here its local JSON builder, as for a hub id);
    the question and answer fields are matched separately, so a planted full text is found too, and
    a question shorter than 13 words is matched whole: a near-miss containing all of it is removed."""
    root, expect = planted
    config = tmp_path / "hf.yaml"
    config.write_text(RULES_OFF + f"decontaminate:\n  sets:\n    - {{name: finqa, hf: json, data_files: "
                      f"{root / 'finqa.jsonl'}, split: train, fields: [question, answer]}}\n", encoding="utf-8")
    out = tmp_path / "out"
    stats = stage.main(["--input", str(root / "clean"), "--output", str(out), "--config", str(config)])
    assert stats["balanced"]
    removed = {r["id"]: r for p in sorted((out / "removed").glob("*.jsonl")) for r in map(json.loads, open(p))}
    assert {i for i, kind in expect.items() if kind == "planted"} <= set(removed)
    questions = {" ".join(words(json.loads(line)["question"])) for line in open(root / "finqa.jsonl")}
    for doc_id, record in removed.items():
        assert expect[doc_id] == "planted" or (expect[doc_id] == "near_miss" and record["matched"] in questions
                                                and len(record["matched"].split()) < 13)


def test_missing_evaluation_set_is_a_one_line_error(planted, tmp_path, capsys):
    root, _ = planted
    config = tmp_path / "bad.yaml"
    config.write_text(f"decontaminate:\n  sets:\n    - {{name: finqa, path: {tmp_path / 'nope.jsonl'}}}\n")
    with pytest.raises(SystemExit) as exc:
        stage.main(["--input", str(root / "clean"), "--output", str(tmp_path / "out"), "--config", str(config)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "finqa" in err and "matches no files" in err
    assert not (tmp_path / "out").exists()
