"""The house: which package may import which (issue 23). Walks every import of the product code with ``ast``,
including imports inside functions, and fails on any edge that points up or sideways.

    core        the ground floor: CLI conventions, config reading, document schema, ModelConfig, work-dir layout
    filters     pure text logic                                  -> core
    mixtures    tokenizer, recipes, mixer, token shards          -> core
    pipelines   Beam stages                                      -> core, filters, mixtures
    train       model, trainer, planner, export                  -> core, mixtures
    run         the roof: orchestrator, report, dataset card     -> everything
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

ALLOWED = {
    "core": set(),
    "filters": {"core"},
    "mixtures": {"core"},
    "pipelines": {"core", "filters", "mixtures"},
    "train": {"core", "mixtures"},
    "run": {"core", "filters", "mixtures", "pipelines", "train"},
}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every import of one of our packages in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in ALLOWED]
    return out


def upward_edges() -> list[str]:
    edges = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, target in imported_packages(path):
                if target != package and target not in allowed:
                    edges.append(f"{path.relative_to(ROOT)}:{line}: {package} -> {target}")
    return edges


def test_no_upward_imports():
    assert upward_edges() == []


def test_every_package_has_a_floor():
    """A new top-level package of ours must be given its floor here (else the walk above would skip it)."""
    ours = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert ours == set(ALLOWED)


def test_the_walk_sees_imports_inside_functions(tmp_path):
    """The check can fail: a function-level import of train from pipelines is an edge it reports."""
    src = tmp_path / "m.py"
    src.write_text("import os\n\ndef f():\n    from train import plan\n    import run.report\n", encoding="utf-8")
    assert imported_packages(src) == [(4, "train"), (5, "run")]
