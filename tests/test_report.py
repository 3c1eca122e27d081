"""The run report: one self-contained HTML page with a figure per section, and "not run" where an
input is missing. The fake work directory below has the layout and formats run/orchestrator.py makes."""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from pipelines import clean
from run import report
from tests.conftest import DATA, ROOT

FIGURE_SECTIONS = ("funnel", "removals", "languages", "dedup", "mixture", "training", "throughput", "experiment")
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?%?( \([\d,.]+\u2013[\d,.]+\))?$")

# source -> (domain, read by clean, removed by clean, removed by filter {reason: n}, removed by dedup)
SOURCES = {
    "sec_10q": ("domain", 20, 0, {"gopher_word_count": 2}, 0),
    "reuters": ("domain", 50, 0, {}, 5),
    "wiki": ("general", 40, 0, {"gopher_word_count": 3}, 1),
    "fortunes": ("general", 30, 0, {"lang_not_allowed": 26}, 0),
}


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def _stats(stage: str, by_source: dict[str, dict], **extra: object) -> dict:
    removed: dict[str, int] = {}
    for c in by_source.values():
        for k, v in c["removed"].items():
            removed[k] = removed.get(k, 0) + v
    return {"stage": stage, "input": sum(c["input"] for c in by_source.values()),
            "output": sum(c["output"] for c in by_source.values()), "removed": removed, "balanced": True,
            "by_source": by_source, **extra}


def make_work(root: Path) -> Path:
    """A finished run: per-source clean and filter stats, dedup, tokenize, mix, train, experiment."""
    work = root / "work"
    after_filter = {}
    for name, (_domain, read, _, filtered, _) in SOURCES.items():
        _write(work / "clean" / name / "stats.json",
               _stats("clean", {name: {"input": read, "output": read, "removed": {}}}))
        kept = read - sum(filtered.values())
        langs = {"en": 4, "de": 10, "fr": 9, "es": 7} if name == "fortunes" else {"en": read}
        _write(work / "filter" / name / "stats.json",
               _stats("filter", {name: {"input": read, "output": kept, "removed": filtered}}, languages=langs))
        after_filter[name] = kept
    # one document the clean stage could not attribute (unparseable line): counted, no source
    reuters_clean = json.loads((work / "clean/reuters/stats.json").read_text())
    reuters_clean.update(input=51, removed={"invalid_json": 1})
    _write(work / "clean/reuters/stats.json", reuters_clean)

    dedup = {n: {"input": k, "output": k - SOURCES[n][4],
                 "removed": {"exact_duplicate": SOURCES[n][4]} if SOURCES[n][4] else {}}
             for n, k in after_filter.items()}
    _write(work / "dedup/stats.json", _stats("dedup", dedup, cluster_size_histogram={"2": 3, "3-4": 1}, clusters=4))
    kept = {n: c["output"] for n, c in dedup.items()}
    _write(work / "tokens/stats.json", _stats(
        "tokenize", {n: {"input": k, "output": k, "removed": {}} for n, k in kept.items()},
        counts={"tokens": 700 * sum(kept.values())},
        sources={f"{SOURCES[n][0]}/{n}": {"docs": k, "tokens": 700 * k, "bytes": 2900 * k, "source": n,
                                           "domain": SOURCES[n][0]} for n, k in kept.items()}))
    # a benchmark's stats.json deeper in the tree: named, never counted
    _write(work / "neardup/runs/ours-0.8/stats.json",
           {"stage": "dedup", "input": 7580, "output": 4575, "removed": {"near_duplicate": 3005}, "balanced": True})

    _write(work / "mix/manifest.json", {
        "target_tokens": 40000, "train_tokens": 39990, "domain_share_target": 0.51, "domain_share_actual": 0.5102,
        "domain_tokens": 20403, "general_tokens": 19587, "params": None, "shortfall": None, "warnings": [],
        "splits": {"train": {"tokens": 39990, "docs": 80, "shards": 1, "bytes": 160000},
                   "val_domain": {"tokens": 1400, "docs": 2, "shards": 1, "bytes": 6000},
                   "val_general": {"tokens": 1400, "docs": 2, "shards": 1, "bytes": 5300}},
        "val_bytes_per_token": {"train": None, "val_domain": 4.28, "val_general": 3.78},
        "sources": {n: {"domain": SOURCES[n][0], "available_tokens": 700 * k, "sampled_tokens": 350 * k + 7,
                        "epochs": (350 * k + 7) / (700 * k), "max_epochs": 4.0, "weight": 0.5}
                    for n, k in kept.items()}})

    records = [{"kind": "start", "params": {"total": 655680}, "strategy": "fsdp", "rank_count": 2,
                "device_name": "cpu", "dtype": "fp32", "total_steps": 100}]
    for step in range(10, 101, 10):
        records.append({"kind": "train", "step": step, "loss": 9 - step / 50, "lr": 3e-3, "tokens": 2048 * step,
                        "tokens_per_s": 7000 + step, "mfu": 0.3 + step / 1000})
        if step % 50 == 0:
            for split, loss in (("val_domain", 7.0 - step / 100), ("val_general", 7.2 - step / 200)):
                records.append({"kind": "eval", "split": split, "step": step, "loss": loss, "ppl": math.exp(loss),
                                "bpb": loss / math.log(2) / 4})
    records.append(records[-1])  # the trainer evaluates again at the end: the same step twice
    lines = [json.dumps(r) for r in records] + ['{"kind": "train", "st']  # killed mid-write
    (work / "train").mkdir()
    (work / "train/metrics.jsonl").write_text("\n".join(lines), encoding="utf-8")

    runs = []
    for arm, domain_end in (("general_only", 6.9), ("blend", 6.1)):
        for seed in (1, 2):
            curve = [{"step": s, "val_domain": 9 - (9 - domain_end) * s / 100 + seed / 100,
                      "val_general": 8 - s / 100} for s in range(0, 101, 25)]
            final = {split: {"loss": curve[-1][split], "ppl": math.exp(curve[-1][split]), "bpb": curve[-1][split] / 3}
                     for split in ("val_domain", "val_general")}
            runs.append({"arm": arm, "seed": seed, "final": final, "curve": curve})
    _write(work / "experiment.json", {"budget_tokens": 2_000_000, "seeds": [1, 2], "runs": runs})
    return work


class Page(HTMLParser):
    """Sections by id, with each one's figures, table cells and paragraphs, and the page's text."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.text: list[str] = []
        self._section: dict | None = None
        self._cell: dict | None = None
        self._p: list[str] | None = None
        self._skip = 0  # inside <style>
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "section" and "id" in a:
            self._section = self.sections[a["id"]] = {"svgs": [], "cells": [], "notes": []}
        elif tag == "style":
            self._skip += 1
        elif self._section is not None:
            if tag == "svg":
                self._section["svgs"].append(0)
            elif tag == "path" and self._section["svgs"]:
                self._section["svgs"][-1] += 1
            elif tag in ("td", "th"):
                self._cell = {"tag": tag, "class": a.get("class", ""), "text": ""}
                self._section["cells"].append(self._cell)
            elif tag == "p":
                self._p = [a.get("class", "")]

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None
        elif tag == "style":
            self._skip -= 1
        elif tag in ("td", "th"):
            self._cell = None
        elif tag == "p" and self._p is not None and self._section is not None:
            self._section["notes"].append((self._p[0], "".join(self._p[1:])))
            self._p = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell["text"] += data
        if self._p is not None:
            self._p.append(data)

    def rows(self, section: str, first: str) -> list[str]:
        """The cells of the table row in ``section`` whose first cell is ``first``."""
        cells = [c for c in self.sections[section]["cells"] if c["tag"] == "td"]
        for i, c in enumerate(cells):
            if c["text"] == first:
                return [x["text"] for x in cells[i:i + 8]]
        raise AssertionError(f"no row {first!r} in {section}")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Page]:
    work = make_work(tmp_path_factory.mktemp("report"))
    out = report.main(["--work", str(work)])
    return out, Page(out.read_text(encoding="utf-8"))


def test_every_section_has_a_drawn_inline_figure(built):
    out, page = built
    assert out.name == "report.html" and out.with_suffix(".md").is_file()
    for sid in FIGURE_SECTIONS:
        section = page.sections[sid]
        assert section["svgs"], f"{sid}: no figure"
        assert max(section["svgs"]) > 20, f"{sid}: a figure with almost nothing drawn"
        assert not any(text.startswith("Not run") for _, text in section["notes"]), sid
    html = out.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img)\b|\b(src|href)=\"https?:", html)  # works offline, as one file
    assert html.count("<figcaption") == len(FIGURE_SECTIONS)


def test_funnel_follows_each_source_through_every_stage(built):
    _, page = built
    # read, after clean, after filter, after dedup, tokenized, kept
    assert page.rows("funnel", "fortunes")[2:] == ["30", "30", "4", "4", "4", "13.3%"]
    assert page.rows("funnel", "reuters")[2:] == ["50", "50", "50", "45", "45", "90.0%"]
    assert page.rows("funnel", report.UNKNOWN_SOURCE)[2:4] == ["1", "0"]  # the unparseable line
    # the stage table sums the run's stages; the benchmark's stats.json deeper down is named, not counted
    assert page.rows("funnel", "filter")[1:6] == ["filter/fortunes", "30", "4", "26", "13.3%"]
    assert page.rows("funnel", "dedup")[1:5] == ["dedup", "109", "103", "6"]
    assert not any(c["text"] == "neardup/runs/ours-0.8" for c in page.sections["funnel"]["cells"])
    assert any("neardup/runs/ours-0.8" in text for _, text in page.sections["funnel"]["notes"])
    html = built[0].read_text(encoding="utf-8")  # the header's first key number
    assert '<div class="k">documents kept</div><div class="v">103</div><div class="d">of 141 read (73.0%)' in html


def test_mixture_training_and_experiment_tables_carry_the_inputs_numbers(built):
    _, page = built
    assert page.rows("mixture", "fortunes")[2:7] == ["2,800", "1,407", "0.500", "0.50", "4.0"]
    last_eval = [c["text"] for c in page.sections["training"]["cells"] if c["tag"] == "td"]
    assert last_eval == ["val_domain", "100", "6.000", "403.4", "2.164", "val_general", "100", "6.700", "812.4",
                         "2.417"]
    blend = page.rows("experiment", "blend")
    assert blend[1] == "2" and blend[2] == f"{math.exp(6.115):,.1f} ({math.exp(6.11):,.1f}\u2013{math.exp(6.12):,.1f})"
    throughput = " ".join(text for _, text in page.sections["throughput"]["notes"])
    assert "median MFU 35.5%" in throughput


def test_numbers_are_right_aligned_and_no_markdown_is_left(built):
    out, page = built
    numeric = [c for s in page.sections.values() for c in s["cells"] if c["tag"] == "td" and NUMBER.match(c["text"])]
    assert len(numeric) > 60
    assert all("num" in c["class"].split() for c in numeric), [c["text"] for c in numeric if "num" not in c["class"]]
    words = [c for s in page.sections.values() for c in s["cells"] if c["tag"] == "td" and c["text"] == "fortunes"]
    assert words and not any("num" in c["class"] for c in words)
    html = out.read_text(encoding="utf-8")
    assert "`" not in html and "**" not in html
    assert not any(t.lstrip().startswith("- ") for t in page.text)
    summary = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "`" not in summary and "documents kept: 103, of 141 read (73.0%)" in summary


def test_missing_inputs_say_not_run_instead_of_failing(tmp_path):
    work = make_work(tmp_path)
    for gone in ("mix/manifest.json", "experiment.json", "dedup/stats.json"):
        (work / gone).unlink()
    (work / "train/metrics.jsonl").write_text('{"kind": "start"}\n', encoding="utf-8")
    for d in (work / "filter").iterdir():  # stats from before per-language counts
        stats = json.loads((d / "stats.json").read_text())
        del stats["languages"]
        (d / "stats.json").write_text(json.dumps(stats))
    page = Page(report.main(["--work", str(work)]).read_text(encoding="utf-8"))
    for sid in ("languages", "dedup", "mixture", "training", "throughput", "experiment"):
        notes = page.sections[sid]["notes"]
        assert len(notes) == 1 and notes[0][0] == "missing" and notes[0][1].startswith("Not run: "), sid
        assert not page.sections[sid]["svgs"], sid
    assert page.sections["funnel"]["svgs"] and page.sections["removals"]["svgs"]
    assert "could not be read" not in "".join(page.text)  # missing is not broken

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "experiment.json").write_text("{not json", encoding="utf-8")
    page = Page(report.main(["--work", str(empty)]).read_text(encoding="utf-8"))
    assert all(page.sections[sid]["notes"][0][1].startswith("Not run: ") for sid in FIGURE_SECTIONS)
    assert "experiment.json could not be read" in "".join(page.text)


def test_experiment_figure_saves_as_a_png_for_the_docs(built, tmp_path):
    results = json.loads((built[0].parent / "experiment.json").read_text())
    buf = io.BytesIO()
    report.experiment_figure(results).savefig(buf, format="png", dpi=100)
    image = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    assert image.size[0] >= 900 and image.size[1] >= 300
    low, high = image.getextrema()
    assert high - low > 200  # lines and text on a white background, not a blank canvas
    assert image.histogram()[255] < 0.97 * image.size[0] * image.size[1]


def test_report_reads_a_real_clean_stage(tmp_path):
    work = tmp_path / "work"
    clean.main(["--input", str(DATA / "finance/sec_10q_aapl.jsonl.gz"), "--output", str(work / "clean/sec"),
                "--domain", "domain", "--max-text-bytes", "20000"])
    (work / "filter/x").mkdir(parents=True)
    (work / "filter/x/stats.json").write_text(json.dumps(
        {"stage": "filter", "input": 10, "output": 7, "removed": {"lang_not_allowed": 2}, "balanced": False}))
    page = Page(report.main(["--work", str(work)]).read_text(encoding="utf-8"))
    assert page.rows("funnel", "clean")[1:7] == ["clean/sec", "37", "36", "1", "97.3%", "yes"]
    assert page.rows("funnel", "filter")[1:7] == ["filter/x", "10", "7", "2", "70.0%", "NO"]
    assert "unbalanced" in "".join(page.text)


def test_a_malformed_input_costs_its_section_not_the_report(tmp_path):
    work = make_work(tmp_path)
    (work / "experiment.json").write_text(json.dumps({"runs": [{"seed": 1, "final": {}}]}), encoding="utf-8")
    page = Page(report.main(["--work", str(work)]).read_text(encoding="utf-8"))
    assert page.sections["experiment"]["notes"][0][1].startswith("Could not draw this section: KeyError")
    assert all(page.sections[sid]["svgs"] for sid in FIGURE_SECTIONS if sid != "experiment")


def test_experiment_is_found_where_make_experiment_writes_it(tmp_path):
    """`make experiment` writes work/experiment/experiment.json; the report of work/demo (its sibling) shows it."""
    work = make_work(tmp_path)  # tmp_path/work: its sibling is tmp_path/experiment
    (tmp_path / "experiment").mkdir()
    (work / "experiment.json").rename(tmp_path / "experiment/experiment.json")
    page = Page(report.main(["--work", str(work)]).read_text(encoding="utf-8"))
    assert page.rows("experiment", "blend") and page.sections["experiment"]["svgs"]
    assert "experiment/experiment.json" in "".join(page.text)
    (tmp_path / "experiment/experiment.json").unlink()
    page = Page(report.main(["--work", str(work)]).read_text(encoding="utf-8"))
    note = page.sections["experiment"]["notes"][0][1]
    assert note.startswith("Not run: ") and "make experiment" in note


def test_few_evaluations_are_markers_and_counted(built):
    """The demo evaluates twice: two markers with their values, no line between them, and the count said."""
    out, page = built
    records = [json.loads(line) for line in (out.parent / "train/metrics.jsonl").read_text().splitlines()[:-1]]
    train, evals = report.training_series(records)
    n = len({r["step"] for recs in evals.values() for r in recs})
    fig = report.training_figure(train, evals)
    ppl_ax = fig.axes[1]
    assert ppl_ax.get_title(loc="left") == f"Validation perplexity ({n} evaluations)"
    assert all(line.get_linestyle() == "None" and line.get_marker() == "o" for line in ppl_ax.get_lines())
    assert len(ppl_ax.texts) == sum(len(recs) for recs in evals.values())  # each point labelled
    caption = "".join(page.text)
    assert f"at the {n} evaluations (steps 50 and 100)" in caption


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (apt-get install chromium)")
def test_screenshot_is_as_tall_as_the_page(built, tmp_path):
    """benchmarks/report_screenshot.sh measures the page first: the PNG ends with the page's footer and margin,
    however tall the report is (a fixed 7,000 px cut the experiment section off a 7,400 px page)."""
    out, _ = built
    png = tmp_path / "report.png"
    env = {k: v for k, v in os.environ.items() if k != "HEIGHT"}
    proc = subprocess.run(["bash", "benchmarks/report_screenshot.sh", str(out.parent), str(png)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    image = Image.open(png).convert("L")
    width, height = image.size
    assert height > 2000 and f"({width}x{height} px)" in proc.stdout
    footer = image.crop((0, height - 90, width, height - 8))    # the footer line: dark text pixels
    margin = image.crop((0, height - 8, width, height))         # below it: page background only
    assert footer.getextrema()[0] < 180 and margin.getextrema()[1] - margin.getextrema()[0] < 8
