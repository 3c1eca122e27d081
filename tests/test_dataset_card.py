"""The dataset card: Hub-loadable front matter, every stage's removals per reason and source, the realized
domain share, epochs, an emptied source and the mixer's warnings as gaps, "not run" for what is missing,
and no local path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from run.dataset_card import (
    CARD_FILE,
    dataset_card,
    kept_languages,
    license_metadata,
    size_category,
    write_dataset_card,
)
from tests.conftest import ROOT

SOURCES = [
    {"name": "filings", "domain": "domain", "license": "public domain", "url": "https://www.sec.gov/edgar",
     "description": "10-Q text blocks | XBRL", "inputs": ["data/x.jsonl.gz"], "priority": 0},
    {"name": "wires", "domain": "domain", "license": "CC BY 4.0", "url": "https://example.org/wires"},
    {"name": "wiki", "domain": "general", "license": "CC BY-SA 3.0", "description": "encyclopedia"},
    {"name": "forum", "domain": "general", "description": "posts in many languages"},  # emptied by the filter
]


def stage_stats(stage: str, by_source: dict[str, tuple[int, int, dict[str, int]]], **extra) -> dict:
    """A stats.json as pipelines/stats.py writes it, from ``{source: (input, output, removed)}``."""
    removed: dict[str, int] = {}
    for _, _, r in by_source.values():
        for k, v in r.items():
            removed[k] = removed.get(k, 0) + v
    return {"stage": stage, "input": sum(i for i, _, _ in by_source.values()),
            "output": sum(o for _, o, _ in by_source.values()), "removed": removed, "balanced": True,
            "by_source": {s: {"input": i, "output": o, "removed": r} for s, (i, o, r) in by_source.items()},
            **extra}


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


@pytest.fixture
def work(tmp_path) -> Path:
    """A run's work directory in the orchestrator's layout, by hand: four sources, `forum` emptied by the
    filter's language ID (so the optional source is skipped by the mixer, with a warning naming its path)."""
    w = tmp_path / "run_a"
    clean = {"filings": (1_500, 1_498, {"empty_after_clean": 2}), "wires": (40_210, 40_210, {}),
             "wiki": (25_000, 24_990, {"invalid_json": 10}), "forum": (3_000, 3_000, {})}
    filt = {"filings": (1_498, 1_400, {"gopher_word_count": 98}),
            "wires": (40_210, 38_000, {"c4_min_sentences": 1_210, "gopher_dup_5gram": 1_000}),
            "wiki": (24_990, 24_000, {"lang_not_allowed": 990}),
            "forum": (3_000, 0, {"lang_not_allowed": 2_345, "lang_low_score": 655})}
    for name in clean:
        write_json(w / "clean" / name / "stats.json", stage_stats("clean", {name: clean[name]}))
        write_json(w / "filter" / name / "stats.json", stage_stats("filter", {name: filt[name]},
                                                                   languages={"en": 60_000, "fr": 2_000}))
        # each source's filter config as run: the base with the run config's override for it (wiki's: 0.4)
        langid = {"enabled": True, "default": {"languages": ["en"], "min_score": 0.4 if name == "wiki" else 0.65}}
        write_json(w / "filter" / name / "filter_config.json", {"annotate_only": False, "config": {"langid": langid}})
    write_json(w / "dedup" / "stats.json", stage_stats("dedup", {
        "filings": (1_400, 1_390, {"exact_duplicate": 10}),
        "wires": (38_000, 31_000, {"exact_duplicate": 4_321, "near_duplicate": 2_679}),
        "wiki": (24_000, 23_950, {"near_duplicate": 50})},
        minhash={"threshold": 0.8, "ngram": 5, "num_perm": 128, "bands": 14, "rows": 9, "verify": True,
                 "cross_source": True}))
    tokens = {"filings": (1_390, 2_000_000), "wires": (31_000, 9_000_000), "wiki": (23_950, 20_000_000)}
    side = {s["name"]: s["domain"] for s in SOURCES}
    write_json(w / "tokens" / "stats.json", {
        **stage_stats("tokenize", {n: (d, d, {}) for n, (d, _) in tokens.items()}),
        "counts": {"tokens": 31_000_000},
        "sources": {f"{side[n]}/{n}": {"docs": d, "tokens": t, "bytes": 4 * t, "source": n, "domain": side[n]}
                    for n, (d, t) in tokens.items()}})
    write_json(w / "mix" / "manifest.json", {
        "params": None, "tokens_per_param": None, "target_tokens": 20_000_000, "train_tokens": 19_999_000,
        "domain_share_target": 0.51, "domain_share_actual": 0.5103, "domain_tokens": 10_205_490,
        "general_tokens": 9_793_510, "seed": 7, "tokenizer": str(w / "mix" / "tokenizer.json"),
        "tokenizer_sha256": "ab" * 32, "vocab_size": 32_768, "dtype": "uint16",
        "splits": {"train": {"tokens": 19_999_000, "docs": 70_123, "shards": 2, "bytes": 80_000_000},
                   "val_domain": {"tokens": 100_000, "docs": 300, "shards": 1, "bytes": 420_000},
                   "val_general": {"tokens": 200_000, "docs": 120, "shards": 1, "bytes": 800_000}},
        "shortfall": None,
        "warnings": [f"optional source forum skipped: no shards in {w / 'tokens' / 'general' / 'forum'}"],
        "sources": {
            "filings": {"domain": "domain", "path": str(w / "tokens" / "domain" / "filings"),
                        "total_tokens": 2_000_000, "val_tokens": 20_000, "available_tokens": 1_980_000,
                        "max_epochs": 8.0, "sampled_tokens": 10_205_490 - 7_000_000, "epochs": 1.6189,
                        "train_docs": 2_200, "train_unique_docs": 1_380},
            "wires": {"domain": "domain", "path": str(w / "tokens" / "domain" / "wires"),
                      "total_tokens": 9_000_000, "val_tokens": 80_000, "available_tokens": 8_920_000,
                      "max_epochs": 4.0, "sampled_tokens": 7_000_000, "epochs": 0.7848, "train_docs": 24_000,
                      "train_unique_docs": 24_000},
            "wiki": {"domain": "general", "path": str(w / "tokens" / "general" / "wiki"),
                     "total_tokens": 20_000_000, "val_tokens": 200_000, "available_tokens": 19_800_000,
                     "max_epochs": 4.0, "sampled_tokens": 9_793_510, "epochs": 0.4946, "train_docs": 11_800,
                     "train_unique_docs": 11_800}},
    })
    return w


def section(card: str, title: str) -> str:
    return card.split(f"\n## {title}\n")[1].split("\n## ")[0]


def test_front_matter_loads_as_a_hub_dataset_card(work, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = write_dataset_card(work, SOURCES)
    assert path == work / "mix" / CARD_FILE
    data = huggingface_hub.DatasetCard.load(path).data
    assert data.pretty_name == "domainlm run_a pretraining mixture"
    assert data.language == ["en"]  # what the filter let through, not every language it saw
    assert data.license == "other" and data.license_name == "per-source-licenses" and data.license_link == "#sources"
    assert data.task_categories == ["text-generation"]
    assert data.size_categories == ["10K<n<100K"]  # 70,123 + 300 + 120 documents
    assert "pretraining" in data.tags and not hasattr(data, "configs")
    assert "\n## Sources\n" in path.read_text()  # the heading license_link points at


def test_removals_per_stage_reason_and_source(work):
    card = dataset_card(work, SOURCES)
    curation = section(card, "Curation: what each stage removed and why")
    # stage totals, summed over the per-source directories
    assert "| `filter` | 69,698 | 63,400 | 6,298 | 9.0% | yes |" in curation
    assert "| `dedup` | 63,400 | 56,340 | 7,060 | 11.1% | yes |" in curation
    # every reason with its count, its sources and why
    assert "| `lang_not_allowed` | 3,335 | forum 2,345, wiki 990 | language ID: not one of" in curation
    assert "| `exact_duplicate` | 4,331 | wires 4,321, filings 10 | the same text as a kept document |" in curation
    assert "| `gopher_dup_5gram` | 1,000 | wires 1,000 | Gopher repetition: duplicated 5-grams" in curation
    assert "| `invalid_json` | 10 | wiki 10 | the line is not valid JSON |" in curation
    assert "`tokenize`: removed nothing." in curation
    # one source's documents through the stages
    assert "| wires | 40,210 | 40,210 | 38,000 | 31,000 | 31,000 |" in curation
    assert "| forum | 3,000 | 3,000 | 0 | 0 | 0 |" in curation
    assert "word 5-grams, 128 permutations in 14 bands of 9, Jaccard >= 0.8" in curation


def test_realized_share_tokens_and_epochs(work):
    card = dataset_card(work, SOURCES)
    mixture = section(card, "Mixture")
    assert "realized 51.03% vs target 51.00%" in mixture
    assert "19,999,000 tokens (target 20,000,000)" in mixture
    assert "| filings | domain | 2,000,000 | 20,000 | 1,980,000 | 3,205,490 | 16.03% | 1.62 | 8 |" in mixture
    assert "| wiki | general | 20,000,000 |" in mixture and "| 0.49 |" in mixture
    assert "| wires | 31,000 | 9,000,000 | 36,000,000 | 4.00 |" in section(card, "Tokens per source")
    assert "| `val_domain` | 300 | 100,000 | 1 | 420,000 | 4.20 |" in section(card, "Dataset structure")
    sources = section(card, "Sources")
    assert "| filings | domain | public domain | <https://www.sec.gov/edgar> | 10-Q text blocks \\| XBRL |" in sources
    assert "| forum | general | not declared | – | posts in many languages |" in sources


def test_emptied_source_and_mixer_warning_are_gaps_without_local_paths(work, tmp_path):
    card = dataset_card(work, SOURCES)
    gaps = section(card, "Known gaps")
    assert ("`forum`: emptied by the `filter` stage (3,000 documents read); removed for lang_not_allowed 2,345, "
            "lang_low_score 655") in gaps
    assert "Mixer warning: optional source forum skipped: no shards in tokens/general/forum" in gaps
    assert not any(name in gaps for name in ("`filings`", "`wires`", "`wiki`"))
    assert str(tmp_path) not in card and str(tmp_path.resolve()) not in card and "/tmp" not in card


def test_missing_files_say_not_run(work, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (work / "dedup" / "stats.json").unlink()
    (work / "mix" / "manifest.json").unlink()
    path = write_dataset_card(work, SOURCES)
    card = path.read_text()
    assert "| `dedup` | not run |" in card and "`dedup`: not run." in card
    assert "The mixer was not run." in section(card, "Mixture")
    assert "The `dedup` stage was not run." in section(card, "Known gaps")
    assert "| wires | 40,210 | 40,210 | 38,000 | not run | 31,000 |" in card
    data = huggingface_hub.DatasetCard.load(path).data
    assert data.size_categories == ["10K<n<100K"]  # 56,340 tokenized documents
    empty = dataset_card(work / "nothing_here", SOURCES[:1])
    assert "The tokenize stage was not run." in empty and "No curation stage has run." in empty


def test_a_shared_license_is_the_card_license():
    assert license_metadata([{"license": "CC BY-SA 3.0"}, {"license": "cc-by-sa-3.0"}]) == {"license": "cc-by-sa-3.0"}
    assert license_metadata([{"license": "public domain"}] * 2) == \
        {"license": "other", "license_name": "public-domain", "license_link": "#sources"}
    assert license_metadata([{"name": "a"}, {"license": ""}]) == {"license": "unknown"}
    assert [size_category(n) for n in (0, 999, 1_000, 2_500_000_000)] == ["n<1K", "n<1K", "1K<n<10K", "1B<n<10B"]


def test_language_is_claimed_only_when_every_filter_enforced_one():
    def config(languages, **langid):
        return {"annotate_only": False, "config": {"langid": {"enabled": True, "default": {"languages": languages},
                                                              **langid}}}
    # each source's filter_config.json is its own (the run config's override applied): its languages count
    assert kept_languages({"a": config(["en"]), "b": config(["de", "en"])}, ["a", "b", "not_filtered"]) == ["de", "en"]
    # an old filter config's per-source table (langid.sources, gone from filter configs) is not read
    assert kept_languages({"a": config(["en"], sources={"a": {"languages": ["fr"]}})}, ["a"]) == ["en"]
    assert kept_languages({"a": config(["en"]), "b": config(None)}, ["a", "b"]) == []  # b: any language
    assert kept_languages({"a": {**config(["en"]), "annotate_only": True}}, ["a"]) == []


def test_import_light_and_cli(work, tmp_path):
    code = ("import sys, run.dataset_card; "
            "print(sorted(m for m in ('torch', 'apache_beam', 'numpy') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps({"work_dir": str(work), "sources": SOURCES}))  # JSON is YAML
    r = subprocess.run([sys.executable, "-m", "run.dataset_card", "--work", str(work), "--config", str(config)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (work / "mix" / CARD_FILE).read_text() == dataset_card(work, SOURCES)
