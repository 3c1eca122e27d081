"""The dedup stage end to end on real text: exact and near duplicates, scopes, chains, determinism."""

from __future__ import annotations

import glob
import json
import random

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from core.documents import schema_with
from pipelines import dedup
from pipelines.components import ConnectedComponents
from tests.conftest import load_stage_dir_both_ways, ref_jaccard


def edit(text: str, positions: range | list[int], word: str) -> str:
    tokens = text.split(" ")
    for i in positions:
        tokens[i % len(tokens)] = word
    return " ".join(tokens)


SCHEMA = schema_with(("lang", pa.string()))


def write_stage(path, rows):
    path.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path / "train-00000-of-00001.parquet")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, finance_docs, general_docs):
    """A finance and a general stage directory with planted duplicates; returns (dirs, facts)."""
    root = tmp_path_factory.mktemp("dedup_in")
    fin = [d for d in finance_docs if len(d["text"].split()) >= 150][:20]
    gen = [d for d in general_docs if len(d["text"].split()) >= 250][:40]

    def row(doc, source, domain, text=None, doc_id=None):
        return {"id": doc_id or doc["id"], "text": text or doc["text"], "source": source, "domain": domain,
                "meta": "{}", "lang": "en"}

    finance = [row(d, "reuters", "domain") for d in fin]
    general = [row(d, "bbc", "general") for d in gen]
    # across sources: a finance story reformatted in the web dump, and one lightly edited
    exact_copy = fin[0]["text"].upper().replace(". ", " .  ")
    near_copy = edit(fin[1]["text"], range(5, 400, 60), "indeed")
    general += [row(fin[0], "bbc", "general", exact_copy, "copy-exact"),
                row(fin[1], "bbc", "general", near_copy, "copy-near")]
    # within the general source: a chain A ~ B ~ C where A and C are not near duplicates
    a = gen[0]["text"]
    n = len(a.split(" "))
    b = edit(a, range(3, n, 80), "meanwhile")
    c = edit(b, range(43, n, 80), "however")
    general += [row(gen[0], "bbc", "general", b, "chain-b"), row(gen[0], "bbc", "general", c, "chain-c")]
    # an exact duplicate inside the finance source
    finance.append(row(fin[2], "reuters", "domain", fin[2]["text"] + "\n", "zz-fin-dup"))
    random.Random(0).shuffle(general)
    write_stage(root / "finance", finance)
    write_stage(root / "general", general)
    facts = {
        "near_j": ref_jaccard(fin[1]["text"], near_copy),
        "ab": ref_jaccard(a, b), "bc": ref_jaccard(b, c), "ac": ref_jaccard(a, c),
        "fin0": fin[0]["id"], "fin1": fin[1]["id"], "fin2": fin[2]["id"], "a": gen[0]["id"],
        "n_input": len(finance) + len(general),
    }
    return [str(root / "finance"), str(root / "general")], facts


def run(inputs, out, *extra):
    return dedup.main(["--input", inputs[0], "--input", inputs[1], "--output", str(out), *extra])


def read_dir(out):
    kept = pq.read_table(sorted(glob.glob(f"{out}/train-*.parquet"))).to_pylist()
    dups = pq.read_table(sorted(glob.glob(f"{out}/duplicates/part-*.parquet"))).to_pylist()
    return kept, {(d["source"], d["id"]): d for d in dups}


def test_fixture_is_what_it_claims(corpus):
    _, f = corpus
    assert 0.85 <= f["near_j"] < 1.0
    assert f["ab"] >= 0.85 and f["bc"] >= 0.85 and f["ac"] < 0.8  # a real chain at threshold 0.8


def test_cross_source_exact_near_chain_and_balanced_stats(corpus, tmp_path):
    inputs, f = corpus
    stats = run(inputs, tmp_path / "out", "--cross-source")
    kept, dups = read_dir(tmp_path / "out")
    # stats balance and match the files
    assert stats["balanced"] and stats["input"] == f["n_input"]
    assert stats["output"] == len(kept) and sum(stats["removed"].values()) == len(dups)
    assert stats["input"] == stats["output"] + stats["removed"]["exact_duplicate"] + stats["removed"]["near_duplicate"]
    on_disk = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert {k: stats[k] for k in on_disk} == on_disk
    # the same article in both sources is kept once, in the domain source
    assert dups[("bbc", "copy-exact")] == {"id": "copy-exact", "source": "bbc", "cluster": f["fin0"],
                                           "cluster_source": "reuters", "reason": "exact"}
    assert dups[("bbc", "copy-near")]["reason"] == "near"
    assert dups[("bbc", "copy-near")]["cluster"] == f["fin1"]
    assert dups[("reuters", "zz-fin-dup")]["reason"] == "exact"
    assert dups[("reuters", "zz-fin-dup")]["cluster"] == f["fin2"]
    # the chain collapses to one survivor even though A and C are below the threshold
    assert dups[("bbc", "chain-b")]["cluster"] == f["a"] and dups[("bbc", "chain-c")]["cluster"] == f["a"]
    kept_ids = {(d["source"], d["id"]) for d in kept}
    assert ("bbc", f["a"]) in kept_ids and ("reuters", f["fin0"]) in kept_ids
    assert not kept_ids & set(dups)
    # every input column survives, and the cluster histogram counts the planted clusters
    assert pq.read_schema(glob.glob(str(tmp_path / "out" / "train-*.parquet"))[0]).names == SCHEMA.names
    assert stats["cluster_size_histogram"]["3-4"] >= 1  # A, B, C
    assert stats["clusters"] == sum(stats["cluster_size_histogram"].values())
    counts = stats["counts"]
    assert counts["verified_edges"] <= counts["candidate_edges"]
    assert counts["cc_residual_edges"] == 0 or counts["cc_unconverged_nodes"] > 0


def test_within_source_scope_keeps_cross_source_copies(corpus, tmp_path, capsys):
    inputs, f = corpus
    stats = run(inputs, tmp_path / "out", "--cluster-alarm", "3")
    assert f"ALARM: cluster of 3 documents kept as bbc/{f['a']}" in capsys.readouterr().out
    _, dups = read_dir(tmp_path / "out")
    assert ("bbc", "copy-exact") not in dups and ("bbc", "copy-near") not in dups
    assert dups[("reuters", "zz-fin-dup")]["reason"] == "exact"
    assert dups[("bbc", "chain-c")]["cluster"] == f["a"]
    assert stats["balanced"]


def test_same_kept_set_in_memory_and_multi_processing(corpus, tmp_path):
    inputs, _ = corpus
    run(inputs, tmp_path / "a", "--cross-source", "--direct_running_mode", "in_memory")
    run(inputs, tmp_path / "b", "--cross-source", "--direct_running_mode", "multi_processing",
        "--direct_num_workers", "2")
    names = sorted(p.name for p in (tmp_path / "a").glob("train-*.parquet"))
    assert names == ["train-00000-0000-000.parquet", "train-00001-0000-000.parquet"]  # one per input split
    assert names == sorted(p.name for p in (tmp_path / "b").glob("train-*.parquet"))
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert read_dir(tmp_path / "a")[1] == read_dir(tmp_path / "b")[1]


def union_find_components(edges):
    parent = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x
    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {n: find(n) for n in parent if find(n) != n}


@pytest.mark.parametrize("rounds", [0, 1, 3])
def test_connected_components_match_union_find_for_any_round_count(rounds):
    rng = random.Random(rounds)
    nodes = [f"n{i:03d}" for i in range(120)]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(90)]
    edges += [(nodes[i], nodes[i + 1]) for i in range(40, 70)]  # a long path: needs many rounds
    with test_pipeline.TestPipeline() as p:
        out = p | beam.Create(edges) | ConnectedComponents(rounds)
        assert_that(out["labels"], equal_to(sorted(union_find_components(edges).items())))


def test_repeated_id_keeps_the_first_and_kept_rows_stay_in_input_order(tmp_path, general_docs):
    docs = [d for d in general_docs if len(d["text"].split()) >= 200][:12]
    rows = [{"id": d["id"], "text": d["text"], "source": "bbc", "domain": "general", "meta": "{}", "lang": "en"}
            for d in docs]
    rows.insert(5, {**rows[1], "text": docs[-1]["text"] + " A different story under the same id."})
    write_stage(tmp_path / "in", rows)
    # tiny splits: every row group (written below) is its own split
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp_path / "in" / "train-00000-of-00001.parquet",
                   row_group_size=2)
    stats = dedup.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--split-mb", "0.001"])
    kept, dups = read_dir(tmp_path / "out")
    assert stats["balanced"] and stats["removed"] == {"duplicate_id": 1}
    assert dups[("bbc", rows[1]["id"])]["reason"] == "duplicate_id"  # the second occurrence (row 6)
    assert [r["text"] for r in kept] == [r["text"] for i, r in enumerate(rows) if i != 5]
    assert len(list((tmp_path / "out").glob("train-*.parquet"))) > 3


def test_no_verify_keeps_every_candidate_edge(corpus, tmp_path):
    inputs, f = corpus
    stats = run(inputs, tmp_path / "out", "--cross-source", "--no-verify")
    _, dups = read_dir(tmp_path / "out")
    assert stats["balanced"] and stats["minhash"]["verify"] is False
    assert stats["counts"]["verified_edges"] == stats["counts"]["candidate_edges"] > 0
    assert dups[("bbc", "copy-near")]["cluster"] == f["fin1"]


def test_command_line_run_as_main(corpus, tmp_path):
    """``python -m pipelines.dedup``: Beam pickles __main__'s DoFns by value, so everything they
    reference must pickle (a regression: a module-level struct.Struct did not)."""
    import subprocess
    import sys

    inputs, f = corpus
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pipelines.dedup", "--input", inputs[0], "--input", inputs[1],
                           "--output", str(out), "--cross-source"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["balanced"] and stats["input"] == f["n_input"]


def test_load_dataset_on_the_stage_directory_gives_the_kept_documents(corpus, tmp_path):
    """duplicates/ holds Parquet of another schema: the directory's dataset card names the kept parts."""
    inputs, _ = corpus
    out = tmp_path / "out"
    stats = run(inputs, out, "--cross-source")
    kept, _ = read_dir(out)
    assert list((out / "duplicates").glob("part-*.parquet"))
    for ds in load_stage_dir_both_ways(out, tmp_path / "hf_cache"):
        assert len(ds) == stats["output"] == len(kept)
        assert sorted(ds["id"]) == sorted(d["id"] for d in kept) and "cluster" not in ds.column_names
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and f"{stats['output']:,} of {stats['input']:,}" in card
