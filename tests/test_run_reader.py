"""The one reader of a run's work directory (``core.workdir.read_run``, issue 23): on a partial run (only the
clean and filter stages have run, for real, on the embedded EDGAR 10-Q sample) it gives the stage stats per
source, the filter config and nothing else, and the report and the dataset card built on it say "not run" for
the rest; what cannot be read is named, a deeper benchmark's stats.json is not the run's, the run config's
``mixture:`` is the run's manifest (never a mixture search's proxy), and "vocab_size 0" is the mixture's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.workdir import Manifest, read_run, stage_totals, takes_mixture_vocab
from pipelines import clean
from pipelines import filter as filter_stage
from run import dataset_card, report
from tests.conftest import DATA, ROOT


@pytest.fixture(scope="module")
def partial(tmp_path_factory) -> Path:
    """WORK with clean/sec_10q and filter/sec_10q written by the stages themselves, and nothing after them."""
    work = tmp_path_factory.mktemp("partial") / "work"
    clean.main(["--input", str(DATA / "finance/sec_10q_aapl.jsonl.gz"), "--output", str(work / "clean/sec_10q"),
                "--domain", "domain", "--max-text-bytes", "20000"])
    filter_stage.main(["--input", str(work / "clean/sec_10q"), "--output", str(work / "filter/sec_10q")])
    return work


def test_a_partial_run_is_read_as_far_as_it_went(partial):
    rec = read_run(partial)
    assert [(s.name, s.where, s.source) for s in rec.stages] == [("clean", "clean/sec_10q", "sec_10q"),
                                                                ("filter", "filter/sec_10q", "sec_10q")]
    assert rec.problems == [] and rec.elsewhere == []
    assert rec.manifest is None and rec.metrics == [] and rec.tokenizer is None and rec.sweep is None
    assert list(rec.filter_configs) == ["sec_10q"] and "langid" in rec.filter_configs["sec_10q"]["config"]
    cleaned = json.loads((partial / "clean/sec_10q/stats.json").read_text())
    filtered = json.loads((partial / "filter/sec_10q/stats.json").read_text())
    assert rec.by_stage() == {"clean": {"sec_10q": cleaned}, "filter": {"sec_10q": filtered}}
    totals = stage_totals(rec.stages)
    assert list(totals) == ["clean", "filter"]
    for stage, stats in (("clean", cleaned), ("filter", filtered)):
        t = totals[stage]
        assert (t["input"], t["output"], t["removed"]) == (stats["input"], stats["output"],
                                                            sum(stats["removed"].values()))
        assert t["input"] == t["output"] + t["removed"] and t["balanced"]
        assert dict(t["reasons"]) == stats["removed"]
    assert totals["filter"]["input"] == totals["clean"]["output"] > 0


def test_report_and_card_of_the_partial_run_say_not_run_for_the_rest(partial):
    run = report.load_run(partial)
    html = report.build_html(run)
    for sid in ("dedup", "mixture", "training"):
        assert f'<section id="{sid}"><h2>' in html
        assert html.split(f'<section id="{sid}">')[1].split("</section>")[0].count('class="missing">Not run:') == 1
    card = dataset_card.dataset_card(partial, [{"name": "sec_10q", "domain": "domain"}])
    assert "The `dedup` stage was not run." in card and "The `tokenize` stage was not run." in card
    assert "The mixer was not run." in card
    assert card.split("\nlanguage:\n")[1].startswith("- en\n")  # from the filter config the stage wrote


def test_unreadable_records_are_named_and_deeper_stats_are_not_the_runs(partial, tmp_path):
    work = tmp_path / "work"
    for stage in ("clean", "filter"):
        (work / stage / "sec_10q").mkdir(parents=True)
        (work / stage / "sec_10q" / "stats.json").write_bytes((partial / stage / "sec_10q/stats.json").read_bytes())
    (work / "dedup").mkdir()
    (work / "dedup/stats.json").write_text('{"stage": "dedup", "inp', encoding="utf-8")  # cut off
    (work / "filter/other").mkdir()
    (work / "filter/other/stats.json").write_text("[1, 2]", encoding="utf-8")
    deep = work / "neardup/runs/ours-0.8"
    deep.mkdir(parents=True)
    (deep / "stats.json").write_text(json.dumps({"stage": "dedup", "input": 9, "output": 7,
                                                 "removed": {"near_duplicate": 2}, "balanced": True}))
    rec = read_run(work)
    assert [s.where for s in rec.stages] == ["clean/sec_10q", "filter/sec_10q"]
    assert rec.elsewhere == ["neardup/runs/ours-0.8"]
    assert rec.problems == ["dedup/stats.json could not be read (JSONDecodeError)",
                            "filter/other/stats.json is not a JSON object"]


def _manifest(path: Path, **fields) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "manifest.json").write_text(Manifest(**fields).to_json(), encoding="utf-8")


def test_the_runs_manifest_and_metrics(tmp_path):
    work = tmp_path / "work"
    _manifest(work / "sweep/mix/p01", train_tokens=111, vocab_size=400)  # a mixture search's proxy: not the run's
    assert read_run(work).manifest is None
    _manifest(work / "mix/blend", train_tokens=222, vocab_size=400)  # make experiment: mix/<arm>/
    assert read_run(work).manifest.train_tokens == 222
    _manifest(work / "mix", train_tokens=333, vocab_size=400)  # the orchestrator's mix/
    assert read_run(work).manifest.train_tokens == 333
    _manifest(tmp_path / "built", train_tokens=444, vocab_size=512)  # `mixture: DIR` in the run config as run
    (work / "run.yaml").write_text(f"work_dir: {work}\nmixture: {tmp_path / 'built'}\n", encoding="utf-8")
    rec = read_run(work)
    assert rec.manifest.train_tokens == 444 and rec.manifest_path == tmp_path / "built/manifest.json"
    assert rec.run_config["mixture"] == str(tmp_path / "built")
    (work / "train").mkdir()
    (work / "train/metrics.jsonl").write_text('{"kind": "start"}\n{"kind": "train", "step": 1, "loss": 5.5}\n'
                                              '{"kind": "train", "st', encoding="utf-8")  # killed mid-write
    assert [r["kind"] for r in read_run(work).metrics] == ["start", "train"]
    (tmp_path / "built/manifest.json").write_text('{"vocab_size": "many"}', encoding="utf-8")
    rec = read_run(work)
    assert rec.manifest is None and rec.problems == [f"{tmp_path / 'built/manifest.json'} could not be read "
                                                     "(ValueError)"]


def test_vocab_size_zero_is_the_mixtures():
    mixture = Manifest(vocab_size=400)
    assert takes_mixture_vocab(0) and not takes_mixture_vocab(512)
    assert mixture.model_vocab_size(0) == 400 and mixture.model_vocab_size(512) == 512
    assert mixture.model_vocab_size(256) == 256  # too small: the callers refuse it, the rule does not hide it


def test_the_trainer_takes_the_mixtures_vocabulary_by_the_same_rule(tmp_path):
    """train.trainer.open_data: model.vocab_size 0 becomes the manifest's; an explicit one stays and must cover it
    (both decided before any shard is opened: this mixture has none)."""
    from core.config import ConfigError
    from train.config import load_config
    from train.trainer import open_data

    _manifest(tmp_path / "mix", train_tokens=1_000, vocab_size=400)

    def config(vocab: int):
        return load_config(ROOT / "configs/train/tiny.yaml", [f"data.dir={tmp_path / 'mix'}",
                                                               f"train.out_dir={tmp_path / 'out'}",
                                                               f"model.vocab_size={vocab}"])
    for vocab, want in ((0, 400), (512, 512)):
        cfg = config(vocab)
        with pytest.raises(ConfigError, match="data.dir="):  # no shards: refused after the vocabulary is set
            open_data(cfg, 0, 1)
        assert cfg.model.vocab_size == want
    with pytest.raises(ConfigError, match="mixture vocab_size 400 > model.vocab_size 256"):
        open_data(config(256), 0, 1)
    (tmp_path / "mix/manifest.json").write_text('{"train_tokens": 1000}', encoding="utf-8")  # hand-made, no vocab
    with pytest.raises(ConfigError, match="model.vocab_size is 0 but the mixture's manifest.json has no vocab_size"):
        open_data(config(0), 0, 1)
