"""The run orchestrator (run/orchestrator.py): one config, steps skipped when done, an interrupted run
resumes at the step that did not finish with the same bytes, a changed setting reruns what it affects."""

from __future__ import annotations

import filecmp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from run import orchestrator as run
from tests.conftest import DATA, ROOT

pytestmark = pytest.mark.slow


def write_config(tmp: Path, work: Path, **changes) -> Path:
    """A small run: a domain and a general source from data/, a fast BPE tokenizer, a tiny mixture."""
    tokenizer = tmp / "tokenizer.yaml"
    tokenizer.write_text("type: bpe\nvocab_size: 400\nsample_bytes: 200000\n")
    cfg = {
        "work_dir": str(work),
        "sources": [
            {"name": "sec_10q", "domain": "domain", "inputs": [str(DATA / "finance" / "sec_10q_aapl.jsonl.gz")],
             "priority": 0, "license": "public record", "filter": {"c4": {"min_num_sentences": 1}}},
            {"name": "austen", "domain": "general", "inputs": [str(DATA / "general" / "austen.jsonl.gz")],
             "license": "public domain"},
        ],
        "filter": {"config": str(ROOT / "configs" / "filter" / "demo.yaml")},
        "dedup": {"cross_source": True},
        "tokenizer": {"config": str(tokenizer)},
        "mix": {"target": {"tokens": 20_000}, "val_fraction": 0.05, "shard_tokens": 5_000, "allow_shortfall": True},
        "train": {"config": str(ROOT / "configs" / "train" / "tiny.yaml")},
    }
    for key, value in changes.items():
        cfg[key] = value
    path = tmp / f"run-{len(list(tmp.glob('run-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def untimed(path: Path) -> dict:
    """The tokenizer's training.json without its wall-clock timings (the one output that may differ)."""
    import json
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.pop("train_seconds", None)
    doc.pop("training", None)
    return doc


def outputs(work: Path) -> list[str]:
    """Every output file of a run, relative (the step records hold timings: not outputs)."""
    return sorted(str(p.relative_to(work)) for p in work.rglob("*")
                  if p.is_file() and ".run" not in p.relative_to(work).parts)


def test_killed_during_dedup_resumes_there_with_identical_outputs(tmp_path):
    work = tmp_path / "work"
    config = write_config(tmp_path, work)
    done = dict(run.main(["--config", str(config), "--until", "mix"]))
    assert set(done.values()) == {"ran"} and "mix" in done
    reference = tmp_path / "reference"
    shutil.copytree(work, reference)
    shutil.rmtree(work)

    proc = subprocess.Popen([sys.executable, "-m", "run", "--config", str(config), "--until", "mix"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 180
    while not (work / "dedup").exists():  # the dedup stage has started writing
        assert proc.poll() is None and time.time() < deadline, "the run ended before dedup started"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / "mix").exists()

    done = dict(run.main(["--config", str(config), "--until", "mix"]))
    assert {k: v for k, v in done.items() if k.startswith(("clean", "filter"))} == {
        "clean:sec_10q": "skipped", "clean:austen": "skipped", "filter:sec_10q": "skipped", "filter:austen": "skipped"}
    assert done["dedup"] == done["tokenizer"] == done["tokenize"] == done["mix"] == "ran"
    assert outputs(work) == outputs(reference)
    different = [f for f in outputs(work) if not filecmp.cmp(work / f, reference / f, shallow=False)
                 and not (f.endswith("training.json") and untimed(work / f) == untimed(reference / f))]
    assert not different


def test_a_changed_filter_setting_reruns_filter_and_later_stages_only(tmp_path, capsys):
    work = tmp_path / "work"
    first = write_config(tmp_path, work)
    run.main(["--config", str(first), "--until", "tokenize"])
    again = dict(run.main(["--config", str(first), "--until", "tokenize"]))
    assert set(again.values()) == {"skipped"}

    sources = yaml.safe_load(first.read_text())["sources"]
    sources[1]["filter"] = {"gopher_quality": {"min_doc_words": 100}}  # a threshold of one source
    changed = dict(run.main(["--config", str(write_config(tmp_path, work, sources=sources)), "--until", "tokenize"]))
    assert changed == {"clean:sec_10q": "skipped", "clean:austen": "skipped", "filter:sec_10q": "skipped",
                       "filter:austen": "ran", "dedup": "ran", "tokenizer": "ran", "tokenize": "ran"}

    capsys.readouterr()
    forced = dict(run.main(["--config", str(first), "--until", "dedup", "--force", "filter"]))
    out = capsys.readouterr().out
    assert "run: filter:austen: running (forced (--force filter))" in out and "settings" not in out
    assert forced == {"clean:sec_10q": "skipped", "clean:austen": "skipped", "filter:sec_10q": "ran",
                      "filter:austen": "ran", "dedup": "ran"}


@pytest.mark.parametrize("change, message", [
    ({"sources": []}, "sources must be a non-empty list"),
    ({"dedup": {"treshold": 0.8}}, "dedup keys ['treshold']"),
    ({"sources": [{"name": "x", "domain": "finance", "inputs": ["a"]}]}, "domain must be one of domain or general"),
])
def test_bad_run_configs_exit_2_with_one_line(tmp_path, capsys, change, message):
    config = write_config(tmp_path, tmp_path / "work", **change)
    with pytest.raises(SystemExit) as exc:
        run.main(["--config", str(config)])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_source_with_its_text_under_another_field_is_cleaned_through_text_field(tmp_path):
    """`text_field`/`id_field` of a source reach the clean stage: nested JSON (article.body) keeps its documents."""
    import gzip
    import json

    with gzip.open(DATA / "finance" / "reuters_finance.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f][:20]
    nested = tmp_path / "nested.jsonl"
    nested.write_text("".join(json.dumps({"article": {"uid": f"r{i}", "body": d["text"]}}) + "\n"
                              for i, d in enumerate(docs)), encoding="utf-8")
    work = tmp_path / "work"
    sources = [{"name": "wires", "domain": "domain", "inputs": [str(nested)], "text_field": "article.body",
                "id_field": "article.uid"},
               {"name": "austen", "domain": "general", "inputs": [str(DATA / "general" / "austen.jsonl.gz")]}]
    config = write_config(tmp_path, work, sources=sources)
    assert dict(run.main(["--config", str(config), "--until", "clean"]))["clean:wires"] == "ran"
    stats = json.loads((work / "clean" / "wires" / "stats.json").read_text(encoding="utf-8"))
    assert stats["input"] == len(docs) and stats["output"] > 0.8 * len(docs), stats


def base_tokenizer_dir(tmp: Path) -> Path:
    """A Llama-style "base model" tokenizer (``<s>`` BOS added by its post-processor, ``</s>`` EOS), BPE of
    400 pieces learned on real text from data/, saved as a Hugging Face directory's tokenizer.json."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    from tests.conftest import read_jsonl_gz

    texts = [d["text"] for d in read_jsonl_gz(DATA / "finance" / "reuters_finance.jsonl.gz")[:200]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    base = tmp / "base"
    base.mkdir()
    tok.save(str(base / "tokenizer.json"))
    (base / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    return base


def test_a_pretrained_tokenizer_is_copied_not_trained_and_tokenizes_with_its_bos_eos(tmp_path):
    import json

    from mixtures.tokenizer import file_sha256

    base, work = base_tokenizer_dir(tmp_path), tmp_path / "work"
    config = write_config(tmp_path, work, tokenizer={"pretrained": str(base)})
    done = dict(run.main(["--config", str(config), "--until", "mix"]))
    assert done["tokenizer"] == done["tokenize"] == done["mix"] == "ran"
    assert filecmp.cmp(base / "tokenizer.json", work / "tokenizer" / "tokenizer.json", shallow=False)
    assert (work / "tokenizer" / "tokenizer_config.json").is_file()
    assert not (work / "tokenizer" / "training.json").exists()  # nothing was trained
    manifest = json.loads((work / "mix" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["tokenizer_sha256"] == file_sha256(base / "tokenizer.json") and manifest["vocab_size"] == 400
    assert manifest["eos_token"] == "</s>" and manifest["eos_id"] == 1 and manifest["bos_id"] == 0
    from mixtures.shards import TokenStream
    train = TokenStream(work / "mix" / "train")
    doc = train.shards[0].doc(0)
    assert doc[0] == 0 and doc[-1] == 1 and train.dtype.name == "uint16"


@pytest.mark.parametrize("setting, message", [
    ({"pretrained": "nowhere"}, "tokenizer.pretrained: 'nowhere' has no tokenizer.json"),
    ({"pretrained": "BASE", "config": "x.yaml"}, "tokenizer.pretrained replaces tokenizer training"),
])
def test_bad_pretrained_tokenizers_exit_2_with_one_line(tmp_path, capsys, setting, message):
    base = base_tokenizer_dir(tmp_path)
    setting = {k: str(base) if v == "BASE" else v for k, v in setting.items()}
    config = write_config(tmp_path, tmp_path / "work", tokenizer=setting)
    with pytest.raises(SystemExit) as exc:
        run.main(["--config", str(config)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and not (tmp_path / "work" / "tokenizer").exists()


def test_a_model_smaller_than_the_pretrained_vocabulary_is_refused_before_any_work(tmp_path, capsys):
    base = base_tokenizer_dir(tmp_path)
    config = write_config(tmp_path, tmp_path / "work", tokenizer={"pretrained": str(base)},
                          train={"config": str(ROOT / "configs" / "train" / "tiny.yaml"),
                                 "overrides": {"model.vocab_size": 300}})
    with pytest.raises(SystemExit) as exc:
        run.main(["--config", str(config)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "vocabulary of 400" in err and "model.vocab_size 300" in err
    assert not (tmp_path / "work" / "clean").exists()
