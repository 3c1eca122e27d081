"""The run report's figures: one matplotlib function per figure, each returning a ``Figure`` that
``run/report.py`` embeds as inline SVG (``svg``), in one house style (``STYLE``, the colors below).

``experiment_figure`` is public so a script can also save the experiment's figure as a PNG for the docs.
"""

from __future__ import annotations

import functools
import io
import math
import re
import statistics
from collections import Counter
from collections.abc import Callable
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from core.workdir import DOC_STAGES, Manifest

STAGE_ORDER = DOC_STAGES  # (core/workdir.py: the stages with a stats.json, in order)
# One source's documents after each step; "read" is what the clean stage read.
FUNNEL_STEPS = (("read", "read"), ("clean", "after clean"), ("filter", "after filter"),
                ("dedup", "after dedup"), ("tokenize", "tokenized"))
UNKNOWN_SOURCE = "(source unknown)"  # documents a stage counted but could not attribute to a source
MAX_ROWS = 24  # sources or languages drawn one by one; the rest are summed into "other"

DOMAIN_COLOR = {"domain": "#2563eb", "general": "#ea7a17"}
DOMAIN_TEXT = {"domain": "#1d4ed8", "general": "#b45309"}  # darker: readable as tick labels
STEP_COLORS = ("#cbd5e1", "#93c5fd", "#60a5fa", "#2563eb", "#1e3a8a")
STAGE_COLOR = {"clean": "#64748b", "filter": "#dc2626", "dedup": "#7c3aed", "tokenize": "#0891b2"}
SPLIT_COLOR = {"train": "#334155", "val_domain": DOMAIN_COLOR["domain"], "val_general": DOMAIN_COLOR["general"]}
ARM_COLOR = {"general_only": "#ea7a17", "blend": "#2563eb"}
FALLBACK_COLORS = ("#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d")

STYLE = {  # matplotlib rcParams for every figure
    "font.size": 10, "axes.titlesize": 11.5, "axes.titleweight": "bold", "axes.titlelocation": "left",
    "axes.labelsize": 10, "axes.labelcolor": "#334155", "axes.edgecolor": "#94a3b8",
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.color": "#e2e8f0",
    "grid.linewidth": 0.8, "axes.axisbelow": True, "xtick.color": "#475569", "ytick.color": "#475569",
    "legend.frameon": False, "legend.fontsize": 9, "svg.fonttype": "path",
}


def _top(counts: dict[str, float], k: int = MAX_ROWS) -> list[tuple[str, float]]:
    """The ``k - 1`` largest entries and one "other (n)" entry summing the rest (all if they fit)."""
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    if len(items) <= k:
        return items
    rest = items[k - 1:]
    return items[:k - 1] + [(f"other ({len(rest)})", sum(v for _, v in rest))]


# ------------------------------------------------------------------------------------ formatting

def human(x: float, _pos: Any = None) -> str:
    """1234567 -> 1.2M: axis ticks and header numbers."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}" if x != int(x) else f"{int(x)}"


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "\u2013"


def number(x: Any, fmt: str) -> str:
    return format(x, fmt) if isinstance(x, (int, float)) and not isinstance(x, bool) else "\u2013"  # not recorded


# ------------------------------------------------------------------------------------- figures

def _styled(build: Callable[..., Figure]) -> Callable[..., Figure]:
    """Build the figure under STYLE. Figures are made without pyplot (no GUI backend, no global
    state): SVG here, PNG through matplotlib's Agg canvas for whoever saves one."""
    @functools.wraps(build)
    def styled(*args: Any, **kwargs: Any) -> Figure:
        with matplotlib.rc_context(STYLE):
            fig = build(*args, **kwargs)
            fig.draw_without_rendering()  # ticks are made lazily: make them under the style too
        return fig
    return styled


def _figure(width: float, height: float, **subplots: Any) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(**subplots)


def _bar_labels(ax: Any, bars: Any, values: list[float], fmt: Any = "{:,.0f}") -> None:
    for bar, v in zip(bars, values):
        text = fmt.format(v) if isinstance(fmt, str) else fmt(v)
        ax.annotate(text, (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8.5, color="#334155")


def _color_ticks(ax: Any, domains: dict[str, str]) -> None:
    for label in ax.get_yticklabels():
        label.set_color(DOMAIN_TEXT.get(domains.get(label.get_text(), ""), "#334155"))


@_styled
def funnel_figure(funnel: dict[str, dict[str, int]], domains: dict[str, str]) -> Figure:
    """Grouped horizontal bars: each source's documents after every stage."""
    order = sorted(funnel, key=lambda s: (domains.get(s) != "domain", -max(funnel[s].values())))
    if len(order) > MAX_ROWS:
        keep, rest = order[:MAX_ROWS - 1], order[MAX_ROWS - 1:]
        other: Counter = Counter()
        for s in rest:
            other.update(funnel[s])
        funnel = {**{s: funnel[s] for s in keep}, f"other ({len(rest)})": dict(other)}
        order = list(funnel)
    steps = [(k, label) for k, label in FUNNEL_STEPS if any(k in f for f in funnel.values())]
    colors = STEP_COLORS[-len(steps):]
    bar_h = 0.84 / len(steps)
    fig, ax = _figure(10, 1.4 + len(order) * (0.09 * len(steps) + 0.1))
    for j, (key, label) in enumerate(steps):
        ys = [i - 0.42 + bar_h * (j + 0.5) for i in range(len(order))]
        ax.barh(ys, [funnel[s].get(key, 0) for s in order], height=bar_h * 0.92, color=colors[j], label=label)
    widest = max(max(f.values()) for f in funnel.values()) or 1
    first, last = steps[0][0], steps[-1][0]
    for i, s in enumerate(order):
        start, end = funnel[s].get(first, 0), funnel[s].get(last, 0)
        ax.annotate(f"{end:,} of {start:,} kept ({pct(end, start)})", (max(funnel[s].values()), i),
                    xytext=(6, 0), textcoords="offset points", va="center", fontsize=8.5, color="#334155")
    ax.set_xlim(0, widest * 1.3)
    ax.set_yticks(range(len(order)), order)
    _color_ticks(ax, domains)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    ax.xaxis.set_major_formatter(FuncFormatter(human))
    ax.set_xlabel("documents")
    ax.set_title("Documents per source through the stages", pad=24)
    ax.legend(ncol=len(steps), loc="lower left", bbox_to_anchor=(0, 1.0), borderaxespad=0.2, handlelength=1.2)
    return fig


@_styled
def totals_funnel_figure(totals: dict[str, dict[str, int]]) -> Figure:
    """All sources together, when the stages did not count by source."""
    steps = [("read", totals["clean"]["input"])] if "clean" in totals else []
    steps += [(s, totals[s]["output"]) for s in STAGE_ORDER if s in totals]
    labels = [dict(FUNNEL_STEPS).get(k, k) for k, _ in steps]
    fig, ax = _figure(10, 1.2 + 0.34 * len(steps))
    bars = ax.barh(labels, [v for _, v in steps], color=STEP_COLORS[-len(steps):], height=0.7)
    _bar_labels(ax, bars, [v for _, v in steps])
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    ax.set_xlim(0, max(v for _, v in steps) * 1.15 or 1)
    ax.xaxis.set_major_formatter(FuncFormatter(human))
    ax.set_xlabel("documents")
    ax.set_title("Documents through the stages (all sources)")
    return fig


@_styled
def removals_figure(removals: dict[str, Counter], totals: dict[str, dict[str, int]]) -> Figure:
    """Horizontal bars: documents removed by each rule, one panel per stage."""
    stages = [s for s in STAGE_ORDER if s in removals] + [s for s in removals if s not in STAGE_ORDER]
    rows = {s: _top(removals[s]) for s in stages}
    heights = [0.55 + 0.25 * len(rows[s]) for s in stages]
    fig, axes = _figure(10, sum(heights) + 0.4, nrows=len(stages), squeeze=False,
                        gridspec_kw={"height_ratios": heights})
    for ax, stage in zip(axes[:, 0], stages):
        names, values = [n for n, _ in rows[stage]], [v for _, v in rows[stage]]
        bars = ax.barh(names, values, color=STAGE_COLOR.get(stage, "#475569"), height=0.7)
        _bar_labels(ax, bars, values)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlim(0, max(values) * 1.15)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(human))
        seen = totals.get(stage, {}).get("input", 0)
        ax.set_title(f"{stage}: {sum(values):,} of {seen:,} documents removed ({pct(sum(values), seen)})")
    axes[-1, 0].set_xlabel("documents removed")
    return fig


@_styled
def languages_figure(langs: Counter) -> Figure:
    rows = _top(langs, 16)
    total = sum(langs.values())
    fig, ax = _figure(10, 1.0 + 0.27 * len(rows))
    bars = ax.barh([k for k, _ in rows], [v for _, v in rows], color="#0f766e", height=0.7)
    _bar_labels(ax, bars, [v for _, v in rows], fmt=lambda v: f"{v:,.0f} ({pct(v, total)})")
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    ax.set_xlim(0, max(v for _, v in rows) * 1.22)
    ax.xaxis.set_major_formatter(FuncFormatter(human))
    ax.set_xlabel("documents (language ID of the filter stage)")
    ax.set_ylabel("language")
    ax.set_title(f"Documents per language: {len(langs)} languages, {total:,} documents")
    return fig


@_styled
def dedup_figure(hist: dict[str, int], removed: Counter) -> Figure:
    fig, ax = _figure(10, 3.0)
    bars = ax.bar(list(hist), list(hist.values()), color=STAGE_COLOR["dedup"], width=0.6)
    pad = max(0.6, (6 - len(hist)) / 2)  # a lone bin is a bar, not a wall
    ax.set_xlim(-pad, len(hist) - 1 + pad)
    for bar, v in zip(bars, hist.values()):
        ax.annotate(f"{v:,}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 3),
                    textcoords="offset points", ha="center", fontsize=8.5, color="#334155")
    ax.set_ylim(0, max(hist.values()) * 1.18)
    ax.grid(axis="x", visible=False)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("cluster size (documents in a group of duplicates)")
    ax.set_ylabel("clusters")
    detail = ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in sorted(removed.items()))
    ax.set_title(f"Duplicate clusters by size: {sum(hist.values()):,} clusters"
                 + (f"\nremoved {detail}" if detail else ""))  # two lines: the reasons do not fit beside it
    return fig


@_styled
def mixture_figure(manifest: Manifest) -> Figure:
    """The recipe's domain share against the realized one; tokens and epochs per source (the mixer's manifest,
    typed: core.workdir.Manifest)."""
    sources = manifest.sources or {}
    order = sorted(sources, key=lambda s: (sources[s].get("domain") != "domain", -sources[s].get("sampled_tokens", 0)))
    order = order[:MAX_ROWS]
    n = max(len(order), 1)
    fig = Figure(figsize=(10, 2.2 + 0.3 * n), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.1, 0.45 + 0.3 * n], width_ratios=[1.4, 1])
    share_ax = fig.add_subplot(grid[0, :])
    tok_ax = fig.add_subplot(grid[1, 0])
    ep_ax = fig.add_subplot(grid[1, 1], sharey=tok_ax)
    target, actual = manifest.domain_share_target or 0.0, manifest.domain_share_actual or 0.0
    for y, (label, share) in enumerate((("recipe", target), ("realized", actual))):
        share_ax.barh(label, 100 * share, color=DOMAIN_COLOR["domain"], height=0.62)
        share_ax.barh(label, 100 * (1 - share), left=100 * share, color=DOMAIN_COLOR["general"], height=0.62)
        share_ax.text(1.5, y, f"domain {100 * share:.1f}%", va="center", color="white", fontsize=9, weight="bold")
        share_ax.text(98.5, y, f"general {100 * (1 - share):.1f}%", va="center", ha="right", color="white",
                      fontsize=9, weight="bold")
    share_ax.set_xlim(0, 100)
    share_ax.invert_yaxis()
    share_ax.grid(False)
    share_ax.set_xlabel("share of training tokens (%)")
    share_ax.set_title(f"Domain share: recipe {100 * target:.1f}%, realized {100 * actual:.2f}%")
    if order:
        colors = [DOMAIN_COLOR.get(sources[s].get("domain"), "#475569") for s in order]
        tok_ax.barh(order, [sources[s].get("available_tokens", 0) for s in order], height=0.72, color="none",
                    edgecolor=colors, hatch="////", linewidth=0.8)
        sampled = [sources[s].get("sampled_tokens", 0) for s in order]
        tok_ax.barh(order, sampled, height=0.46, color=colors)
        for i, s in enumerate(order):
            end = max(sampled[i], sources[s].get("available_tokens", 0))
            tok_ax.annotate(human(sampled[i]), (end, i), xytext=(3, 0), textcoords="offset points", va="center",
                            fontsize=8.5, color="#334155")
        tok_ax.invert_yaxis()
        tok_ax.set_xlim(0, max(sampled + [sources[s].get("available_tokens", 0) for s in order]) * 1.12 or 1)
        tok_ax.grid(axis="y", visible=False)
        tok_ax.xaxis.set_major_formatter(FuncFormatter(human))
        tok_ax.set_xlabel("tokens")
        shown = f" (largest {len(order)} of {len(sources)})" if len(sources) > len(order) else ""
        tok_ax.set_title(f"Tokens per source{shown}", pad=22)
        tok_ax.legend(handles=[Patch(facecolor="#475569", label="sampled for training"),
                               Patch(facecolor="none", edgecolor="#475569", hatch="////", label="available (unique)")],
                      loc="lower left", bbox_to_anchor=(0, 1), ncol=2, borderaxespad=0.2, handlelength=1.4)
        _color_ticks(tok_ax, {s: sources[s].get("domain", "") for s in order})
        epochs = [sources[s].get("epochs", 0) for s in order]
        bars = ep_ax.barh(order, epochs, color=colors, height=0.6)
        _bar_labels(ep_ax, bars, epochs, fmt="{:.2f}")
        caps = [sources[s].get("max_epochs") for s in order]
        ep_ax.scatter([c for c in caps if c], [s for s, c in zip(order, caps) if c], marker="|", s=160,
                      color="#0f172a", linewidths=2, label="max_epochs", zorder=3)
        ep_ax.set_xlim(0, max(epochs + [c or 0 for c in caps]) * 1.15 or 1)
        ep_ax.tick_params(axis="y", labelleft=False)
        ep_ax.grid(axis="y", visible=False)
        ep_ax.set_xlabel("epochs (passes over the source's unique tokens)")
        ep_ax.set_title("Epochs per source", pad=22)
        ep_ax.legend(loc="lower left", bbox_to_anchor=(0, 1), borderaxespad=0.2)
    else:
        tok_ax.set_visible(False)
        ep_ax.set_visible(False)
    return fig


# Up to this many evaluations per split, validation points are drawn as markers only, each with its value: a
# line through 2 points (the demo evaluates at steps 50 and 100) reads as a measured curve it is not.
FEW_EVALS = 4


@_styled
def training_figure(train: list[dict], evals: dict[str, list[dict]]) -> Figure:
    """Loss (train and validation) and validation perplexity over steps; the title says how many evaluations."""
    fig, (loss_ax, ppl_ax) = _figure(10, 3.6, ncols=2)
    n_evals = max((len(recs) for recs in evals.values()), default=0)
    few = n_evals <= FEW_EVALS
    style = {"ls": "none", "marker": "o", "ms": 7} if few else {"lw": 1.6, "marker": "o", "ms": 4}
    if train:
        loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], color=SPLIT_COLOR["train"],
                     lw=1.6, label="train")
    for i, (split, recs) in enumerate(evals.items()):
        color = SPLIT_COLOR.get(split, FALLBACK_COLORS[i % len(FALLBACK_COLORS)])
        steps = [r["step"] for r in recs]
        loss_ax.plot(steps, [r["loss"] for r in recs], color=color, label=split, **style)
        ppl = [r.get("ppl") or math.exp(min(r["loss"], 50.0)) for r in recs]
        ppl_ax.plot(steps, ppl, color=color, label=split, **style)
        for k in range(len(ppl)) if few else [len(ppl) - 1]:
            ppl_ax.annotate(f"{ppl[k]:,.1f}", (steps[k], ppl[k]), xytext=(6, 0), textcoords="offset points",
                            va="center", fontsize=8.5, color=color)
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("loss (nats per token)")
    loss_ax.set_title("Loss")
    loss_ax.legend()
    ppl_ax.set_xlabel("step")
    ppl_ax.set_ylabel("perplexity (e^loss)")
    ppl_ax.set_title(f"Validation perplexity ({n_evals} evaluation{'' if n_evals == 1 else 's'})")
    if evals:
        values = [r.get("ppl") or 0 for recs in evals.values() for r in recs]
        if min(values) > 0 and max(values) / min(values) > 20:
            ppl_ax.set_yscale("log")
        ppl_ax.legend()
    else:
        ppl_ax.text(0.5, 0.5, "no evaluation records", ha="center", va="center", transform=ppl_ax.transAxes)
    return fig


@_styled
def throughput_figure(train: list[dict]) -> Figure:
    fig, ax = _figure(10, 3.0)
    steps = [r["step"] for r in train]
    ax.plot(steps, [r.get("tokens_per_s") or 0 for r in train], color="#0f766e", lw=1.6, marker="o", ms=3,
            label="tokens/s")
    ax.set_ylim(0, max(r.get("tokens_per_s") or 0 for r in train) * 1.15 or 1)
    ax.yaxis.set_major_formatter(FuncFormatter(human))
    ax.set_xlabel("step")
    ax.set_ylabel("tokens/s (all ranks)")
    title = "Training throughput"
    mfu = [(r["step"], 100 * r["mfu"]) for r in train if isinstance(r.get("mfu"), (int, float))]
    if mfu:
        twin = ax.twinx()
        twin.plot([s for s, _ in mfu], [m for _, m in mfu], color="#7c3aed", lw=1.4, ls="--", label="MFU")
        twin.set_ylabel("MFU (% of bf16 peak)")
        twin.set_ylim(0, max(m for _, m in mfu) * 1.3 or 1)
        twin.grid(False)
        twin.spines["right"].set_visible(True)
        ax.legend(handles=ax.get_lines() + twin.get_lines(), loc="lower right")
        title += " and model FLOPs utilization"
    ax.set_title(title)
    return fig


def _arm_curves(runs: list[dict], split: str) -> dict[str, dict[int, list[float]]]:
    """arm -> step -> that split's validation loss, one value per seed."""
    curves: dict[str, dict[int, list[float]]] = {}
    for r in runs:
        for point in r.get("curve") or []:
            if isinstance(point.get(split), (int, float)):
                curves.setdefault(r["arm"], {}).setdefault(point["step"], []).append(point[split])
    return curves


def arm_color(arm: str, i: int) -> str:
    return ARM_COLOR.get(arm, FALLBACK_COLORS[i % len(FALLBACK_COLORS)])


@_styled
def experiment_figure(results: dict[str, Any]) -> Figure:
    """Validation loss over steps on each validation set: per arm, the mean over seeds (thick) and
    every seed (thin). ``results`` is experiment.json; save with ``fig.savefig("x.png", dpi=150)``."""
    runs = results.get("runs") or []
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    fig, axes = _figure(10, 3.8, ncols=2, sharex=True)
    for ax, split in zip(axes, ("val_domain", "val_general")):
        for i, arm in enumerate(arms):
            color = arm_color(arm, i)
            seeds = [r for r in runs if r["arm"] == arm]
            for r in seeds:
                pts = [(p["step"], p[split]) for p in r.get("curve") or [] if isinstance(p.get(split), (int, float))]
                ax.plot([s for s, _ in pts], [v for _, v in pts], color=color, lw=0.8, alpha=0.45)
            mean = sorted((step, statistics.fmean(v)) for step, v in _arm_curves(seeds, split).get(arm, {}).items())
            ax.plot([s for s, _ in mean], [v for _, v in mean], color=color, lw=2.4,
                    label=f"{arm} (mean of {len(seeds)} seeds)")
        ax.set_xlabel("step")
        ax.set_ylabel("validation loss (nats per token)")
        ax.set_title(f"{split}: validation loss")
        ax.legend()
    budget = results.get("budget_tokens")
    if budget:
        fig.suptitle(f"Same budget of {human(budget)} training tokens per run; thin lines are single seeds",
                     fontsize=9.5, color="#475569", x=0.01, ha="left")
    return fig


def continue_rel(results: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Continued pretraining (benchmarks/experiment_continue.py results.json): arm -> ``gain`` (finance, 1 -
    ppl / the same seed's base ppl) and ``forgetting`` (general, ppl / base ppl - 1), one value per seed."""
    runs = results.get("runs") or []
    base = {r["seed"]: r["final"] for r in runs if r.get("arm") == "base"}
    out: dict[str, dict[str, list[float]]] = {}
    for r in runs:
        if r.get("arm") == "base" or r.get("seed") not in base:
            continue
        b, f = base[r["seed"]], r["final"]
        rel = out.setdefault(r["arm"], {"gain": [], "forgetting": []})
        rel["gain"].append(1.0 - f["val_domain"]["ppl"] / b["val_domain"]["ppl"])
        rel["forgetting"].append(f["val_general"]["ppl"] / b["val_general"]["ppl"] - 1.0)
    return out


@_styled
def continue_figure(results: dict[str, Any]) -> Figure:
    """Domain gain vs general forgetting per continued arm of the continued-pretraining experiment, against the
    base of the same seed: means joined in replay order and labelled with the replay share (large markers), seeds
    (small) and the seed range (bars). The from-scratch arm is far off this scale (it has not caught up with the
    base): it is written in a corner, not drawn. ``results`` is work/experiment_continue/results.json."""
    arms = results.get("arms") or {}
    rel = continue_rel(results)
    fig, ax = _figure(7.5, 4.6)
    continued = sorted((a for a in rel if (arms.get(a) or {}).get("kind") == "continue"),
                       key=lambda a: arms[a].get("replay", 0))
    means = []
    for i, arm in enumerate(continued):
        values, color = rel[arm], FALLBACK_COLORS[i % len(FALLBACK_COLORS)]
        x, y = [100 * v for v in values["forgetting"]], [100 * v for v in values["gain"]]
        mx, my = statistics.fmean(x), statistics.fmean(y)
        means.append((mx, my))
        ax.scatter(x, y, s=14, color=color, alpha=0.5)
        ax.errorbar([mx], [my], xerr=[[mx - min(x)], [max(x) - mx]], yerr=[[my - min(y)], [max(y) - my]],
                    fmt="o", ms=8, color=color, capsize=3, lw=1.2,
                    label=f"continued, {100 * arms[arm]['replay']:.0f}% general replay")
        ax.annotate(f"{100 * arms[arm]['replay']:.0f}%", (mx, my), textcoords="offset points", xytext=(6, 6),
                    fontsize=8.5, color=color)
    if len(means) > 1:
        ax.plot(*zip(*means), color="#94a3b8", lw=1, zorder=0)
    for arm in rel:
        if (arms.get(arm) or {}).get("kind") == "scratch":
            g, f = (100 * statistics.fmean(rel[arm][k]) for k in ("gain", "forgetting"))
            ax.text(0.99, 0.03, f"from scratch on the blend, same steps (off this scale):\nfinance {-g:+.0f}% and "
                    f"general {f:+.0f}% perplexity vs the base", transform=ax.transAxes, ha="right", va="bottom",
                    fontsize=8, color="#475569")
    ax.axvline(0, color="#94a3b8", lw=0.8)
    ax.set_xlabel("general forgetting: val_general perplexity above the base (%)")
    ax.set_ylabel("domain gain: val_domain perplexity below the base (%)")
    steps, base = results.get("steps"), results.get("base_steps")
    detail = (f"\nbase: {base} steps; continued {steps} steps; {len(results.get('seeds') or [])} seeds; bars: range "
              "over seeds") if steps and base else ""
    ax.set_title("Continued pretraining: finance gained vs general text lost" + detail, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def svg(fig: Figure, sid: str) -> str:
    """The figure as inline SVG markup, scaled by CSS (no fixed width/height)."""
    buf = io.StringIO()
    with matplotlib.rc_context({**STYLE, "svg.hashsalt": sid}):  # ids unique per figure and stable
        fig.savefig(buf, format="svg", metadata={"Date": None}, facecolor="white")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\s(width|height)="[\d.]+pt"', "", svg, count=2)
    return svg.replace("<svg ", f'<svg role="img" aria-labelledby="{sid}-caption" ', 1)
