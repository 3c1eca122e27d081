"""One Beam job per stage for every source (``pipelines.clean/filter --sources FILE``, and the orchestrator's
clean and filter steps): each source's directory is byte for byte what its own command writes, each entry is
checked as its own command line before any work, each source's counters are its own, and a changed source
reruns alone."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import pytest
import yaml

from pipelines import clean
from pipelines import filter as filter_stage
from run import orchestrator as run
from tests.conftest import DATA, ROOT

SOURCES = {  # small real sources of three kinds: JSON Lines news wires, an EDGAR submission, multilingual lines
    "reuters": {"input": [str(DATA / "finance" / "reuters_finance.jsonl.gz")], "domain": "domain"},
    "sec_8k": {"input": [str(DATA / "edgar" / "apple_8k_20191115.txt")], "domain": "domain", "format": "edgar"},
    "fortunes": {"input": [str(DATA / "multilingual" / "fortunes.jsonl.gz")], "domain": "general",
                 "pii_kinds": "email,phone"},
}
FILTER_CONFIG = ROOT / "configs" / "filter" / "demo.yaml"
OVERRIDE = {"gopher_quality": {"min_doc_words": 30}}  # one source's own filter settings


def same_tree(a: Path, b: Path) -> None:
    """Every file under ``a`` and ``b`` has the same relative path and the same bytes."""
    files_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    files_b = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and files_a
    _, mismatch, errors = filecmp.cmpfiles(a, b, files_a, shallow=False)
    assert not mismatch and not errors, mismatch


def single_argv(entry: dict) -> list[str]:
    out = []
    for key, value in entry.items():
        for v in value if isinstance(value, list) else [value]:
            out += [f"--{key.replace('_', '-')}", str(v)]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each source cleaned and filtered by its own command, and all of them by one job per stage."""
    tmp = tmp_path_factory.mktemp("multi")
    merged = yaml.safe_load(FILTER_CONFIG.read_text())
    merged["gopher_quality"] = {**merged.get("gopher_quality", {}), **OVERRIDE["gopher_quality"]}
    (tmp / "fortunes.yaml").write_text(yaml.safe_dump(merged))
    clean_entries, filter_entries = [], []
    for name, entry in SOURCES.items():
        one = {**entry, "source": name, "output": str(tmp / "single" / "clean" / name)}
        clean.main(single_argv(one))
        config = tmp / "fortunes.yaml" if name == "fortunes" else FILTER_CONFIG
        filter_stage.main(["--input", one["output"], "--output", str(tmp / "single" / "filter" / name),
                           "--config", str(config)])
        clean_entries.append({**one, "output": str(tmp / "multi" / "clean" / name)})
        # the config as a file for two sources, as a mapping (what run.orchestrator passes) for the third
        filter_entries.append({"name": name, "input": [str(tmp / "multi" / "clean" / name)],
                               "output": str(tmp / "multi" / "filter" / name),
                               "config": merged if name == "fortunes" else str(FILTER_CONFIG)})
    (tmp / "clean.yaml").write_text(yaml.safe_dump(clean_entries))
    (tmp / "filter.json").write_text(yaml.safe_dump(filter_entries, default_flow_style=True))  # (JSON is YAML)
    cleaned = clean.main(["--sources", str(tmp / "clean.yaml"), "--runner", "DirectRunner"])
    filtered = filter_stage.main(["--sources", str(tmp / "filter.json")])
    return tmp, cleaned, filtered


@pytest.mark.parametrize("stage", ["clean", "filter"])
def test_one_job_writes_each_source_byte_identical_to_its_own_command(runs, stage):
    tmp, *_ = runs
    for name in SOURCES:
        same_tree(tmp / "single" / stage / name, tmp / "multi" / stage / name)


@pytest.mark.parametrize("which", [1, 2])
def test_each_source_counters_are_in_its_own_namespace_and_match_its_stats(runs, which):
    _, *results = runs
    result = results[which - 1]
    assert set(result["sources"]) == set(SOURCES)
    inputs = set()
    for stats in result["sources"].values():
        assert stats["balanced"] and stats["metrics"] is not None
        assert stats["metrics"]["input"] == stats["input"] and stats["metrics"].get("output", 0) == stats["output"]
        for reason, n in stats["removed"].items():
            assert stats["metrics"][f"removed/{reason}"] == n
        inputs.add(stats["input"])
    assert len(inputs) == len(SOURCES)  # three different sources, three different counts: not one shared total


def test_the_edgar_source_keeps_its_format_in_the_job(runs):
    """The per-entry options really reach their branch: the 8-K's graphics and XBRL are set aside as in
    its own run, and the other sources have none of those reasons."""
    _, cleaned, _ = runs
    assert any(r.startswith("edgar_not_text:") for r in cleaned["sources"]["sec_8k"]["removed"])
    assert not any(r.startswith("edgar_not_text:") for r in cleaned["sources"]["reuters"]["removed"])


def _bad(tmp: Path, entries: list[dict], capsys) -> str:
    path = tmp / "sources.yaml"
    path.write_text(yaml.safe_dump(entries))
    with pytest.raises(SystemExit) as exc:
        clean.main(["--sources", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("change, message", [
    ({"treshold": 3}, "sources[1] (fortunes): unknown key 'treshold'"),
    ({"domain": "finance"}, "sources[1] (fortunes): argument --domain: invalid choice: 'finance'"),
    ({"input": ["data/nowhere/*.jsonl.gz"]}, "sources[1] (fortunes): input 'data/nowhere/*.jsonl.gz' matches no "
                                             "files"),
    ({"pii_kinds": "email,passport"}, "sources[1] (fortunes): --pii-kinds: unknown ['passport']"),
    ({"text_field": "body"}, "sources[1] (fortunes): 0 of"),
    ({"output": "SAME"}, "sources[1] (fortunes): output"),
])
def test_one_bad_entry_exits_2_naming_it_before_any_work(tmp_path, capsys, change, message):
    good = {**SOURCES["reuters"], "source": "reuters", "output": str(tmp_path / "out" / "reuters")}
    other = {**SOURCES["fortunes"], "source": "fortunes", "output": str(tmp_path / "out" / "fortunes"), **change}
    if other["output"] == "SAME":
        other["output"] = good["output"]
    line = _bad(tmp_path, [good, other], capsys)
    assert message in line, line
    assert not (tmp_path / "out").exists()  # the good entry did not start either


def test_stage_flags_beside_sources_are_refused(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump([{**SOURCES["reuters"], "output": str(tmp_path / "o")}]))
    with pytest.raises(SystemExit) as exc:
        filter_stage.main(["--sources", str(path), "--output", str(tmp_path / "x")])
    assert exc.value.code == 2
    assert "give --output in each entry" in capsys.readouterr().err


def test_a_sources_file_that_is_not_a_list_is_refused(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("input: x\n")
    assert "must be a non-empty list of mappings" in _bad_path(path, capsys)


def _bad_path(path: Path, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        clean.main(["--sources", str(path)])
    assert exc.value.code == 2
    return capsys.readouterr().err


def write_run_config(tmp: Path, work: Path, austen_filter: dict | None = None) -> Path:
    cfg = {
        "work_dir": str(work),
        "sources": [
            {"name": "reuters", "domain": "domain", "inputs": [str(DATA / "finance" / "reuters_finance.jsonl.gz")]},
            {"name": "austen", "domain": "general", "inputs": [str(DATA / "general" / "austen.jsonl.gz")],
             **({"filter": austen_filter} if austen_filter else {})},
        ],
        "filter": {"config": str(FILTER_CONFIG)},
        "tokenizer": {"config": str(ROOT / "configs" / "tokenizer" / "demo.yaml")},
        "train": {"config": str(ROOT / "configs" / "train" / "tiny.yaml")},
        "mix": {"target": {"tokens": 20_000}, "allow_shortfall": True},
    }
    path = tmp / f"run-{len(list(tmp.glob('run-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_the_orchestrator_runs_one_job_per_stage_and_a_changed_source_alone(tmp_path, capsys):
    work = tmp_path / "work"
    done = dict(run.main(["--config", str(write_run_config(tmp_path, work)), "--until", "filter"]))
    out = capsys.readouterr().out
    assert done == {f"{stage}:{name}": "ran" for stage in ("clean", "filter") for name in ("reuters", "austen")}
    assert "run: clean: one Beam job for 2 sources (reuters, austen)" in out
    assert "run: filter: one Beam job for 2 sources (reuters, austen)" in out
    assert out.count("clean: wrote") == 2 and out.count("filter: wrote") == 2
    reuters = tmp_path / "reuters-before"
    shutil.copytree(work / "filter" / "reuters", reuters)

    changed = write_run_config(tmp_path, work, austen_filter={"gopher_quality": {"min_doc_words": 40}})
    done = dict(run.main(["--config", str(changed), "--until", "filter"]))
    out = capsys.readouterr().out
    assert done == {"clean:reuters": "skipped", "clean:austen": "skipped", "filter:reuters": "skipped",
                    "filter:austen": "ran"}
    assert "run: filter:austen: running (its settings or inputs changed)" in out
    assert "one Beam job for" not in out and out.count("filter: wrote") == 1  # a one-source job
    same_tree(reuters, work / "filter" / "reuters")  # untouched
    merged = yaml.safe_load((work / ".run" / "filter-austen.yaml").read_text())
    assert merged["gopher_quality"]["min_doc_words"] == 40


def test_sources_whose_stats_do_not_balance_are_named_exit_3(tmp_path, monkeypatch, capsys):
    """After the one job, every source is reported and those whose stats.json does not balance are named."""
    import apache_beam as beam

    from pipelines import options

    def stats(output_dir: str) -> dict:
        bad = output_dir.endswith("austen")
        return {"stage": "clean", "input": 3, "output": 2 if bad else 3, "removed": {}, "balanced": not bad}

    monkeypatch.setattr(options, "load_stats", stats)
    monkeypatch.setattr(options, "write_dataset_card", lambda *a: None)
    outputs = {name: str(tmp_path / name) for name in ("reuters", "austen", "speeches")}
    with pytest.raises(SystemExit) as exc:
        options.run_sources_stage("clean", lambda p: p | beam.Create([1]), options.beam_options([]), outputs)
    assert exc.value.code == 3
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == "error: clean stats do not balance for austen"
    assert captured.out.count("clean: wrote") == 3  # every source reported first
