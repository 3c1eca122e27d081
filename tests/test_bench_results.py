"""benchmarks/RESULTS.md has one writer: every benchmark replaces its own section through core.sections.

Static checks (ast, no benchmark runs): a script that mentions RESULTS imports ``replace_section`` from
core.sections, defines no writer of its own, appends to no markdown file, and names its section by a constant;
no two scripts claim the same section, and no section heading appears twice in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
TITLE_NAMES = ("SECTION", "TITLE", "KEY")  # module constants naming a script's section (KEY/SECTION: a prefix)
OWN_WRITERS = {"replace_section", "write_section", "append_results", "write_results", "append_section"}
# append-mode opens that are not RESULTS.md: the script and the expression it opens, with the reason
APPEND_OK = {("bench_tokenizer_scale.py", "results_path")}  # WORK/results.jsonl, one JSON line per run


def scripts(folder: Path) -> list[Path]:
    return sorted(folder.glob("bench_*.py"))


def _open_mode(call: ast.Call) -> str | None:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else None


def section_names(tree: ast.Module) -> dict[str, str]:
    """The module's TITLE / SECTION / KEY constants, evaluated (an f-string may use an earlier one)."""
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in TITLE_NAMES
                                                for t in node.targets):
            value = eval(compile(ast.Expression(node.value), "<title>", "eval"), {}, dict(names))  # noqa: S307
            for t in node.targets:
                names[t.id] = value
    return names


def problems(folder: Path) -> tuple[list[str], dict[str, tuple[str, bool]]]:
    """What breaks the one-writer rule in ``folder``'s bench_*.py, and each writer's section
    (``script -> (heading or key, is_prefix)``)."""
    found, sections = [], {}
    for path in scripts(folder):
        source = path.read_text(encoding="utf-8")
        if "RESULTS" not in source:
            continue
        tree = ast.parse(source)
        name = path.name
        imported = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    and any(a.name == "replace_section" for a in n.names)]
        if not any(n.module == "core.sections" for n in imported):
            found.append(f"{name}: does not import replace_section from core.sections")
        found += [f"{name}: imports replace_section from {n.module}, not core.sections"
                  for n in imported if n.module != "core.sections"]
        found += [f"{name}:{n.lineno}: defines its own writer {n.name}()" for n in ast.walk(tree)
                  if isinstance(n, ast.FunctionDef) and n.name in OWN_WRITERS]
        for n in ast.walk(tree):
            if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"
                    and "a" in (_open_mode(n) or "") and (name, ast.unparse(n.args[0])) not in APPEND_OK):
                found.append(f"{name}:{n.lineno}: appends to {ast.unparse(n.args[0])}")
        names = section_names(tree)
        heading = names.get("KEY") or names.get("SECTION") or names.get("TITLE")
        if heading is None:
            found.append(f"{name}: no TITLE (or KEY/SECTION prefix) constant names its section")
            continue
        if not heading.startswith("## ") or "\n" in heading:
            found.append(f"{name}: section {heading!r} is not one '## ' heading line")
        sections[name] = (heading, "KEY" in names or "SECTION" in names)
    return found, sections


def headings(markdown: str, heading: str, prefix: bool) -> int:
    return sum(1 for line in markdown.splitlines() if (line.startswith(heading) if prefix else line == heading))


def test_every_benchmark_writes_results_through_core_sections_only():
    found, sections = problems(BENCH)
    assert not found, "\n".join(found)
    assert len(sections) >= 15, sections  # the check looked at the writers, not at an empty folder


def test_no_two_benchmarks_claim_one_section_and_none_is_in_results_twice():
    _, sections = problems(BENCH)
    text = (BENCH / "RESULTS.md").read_text(encoding="utf-8")
    twice = {name: h for name, (h, prefix) in sections.items() if headings(text, h, prefix) > 1}
    assert not twice, f"sections that appear more than once in benchmarks/RESULTS.md: {twice}"
    for name, (h, prefix) in sections.items():
        for other, (h2, _) in sections.items():
            if other != name:
                assert not (h2 == h or (prefix and h2.startswith(h))), f"{name} and {other} both write {h!r}"


def test_the_check_finds_an_appending_script_and_a_copied_writer(tmp_path):
    good = ('from core.sections import replace_section\nTITLE = "## Mine"\n'
            'replace_section("benchmarks/RESULTS.md", TITLE, "x")\n')
    (tmp_path / "bench_good.py").write_text(good)
    (tmp_path / "bench_append.py").write_text('RESULTS = "benchmarks/RESULTS.md"\nTITLE = "## Appended"\n'
                                              'with open(RESULTS, "a") as f:\n    f.write("## Appended\\n")\n')
    (tmp_path / "bench_copy.py").write_text('from benchmarks.bench_train import replace_section\nTITLE = "## Copy"\n'
                                            'def write_section(path):  # RESULTS.md\n    pass\n')
    (tmp_path / "bench_untitled.py").write_text('from core.sections import replace_section\n'
                                                'replace_section("RESULTS.md", "## " + "x", "y")\n')
    found, sections = problems(tmp_path)
    text = "\n".join(found)
    assert "bench_append.py: does not import replace_section" in text
    assert "bench_append.py:3: appends to RESULTS" in text
    assert "bench_copy.py: imports replace_section from benchmarks.bench_train" in text
    assert "bench_copy.py:3: defines its own writer write_section()" in text
    assert "bench_untitled.py: no TITLE" in text
    assert not [f for f in found if f.startswith("bench_good.py")]
    assert sections["bench_good.py"] == ("## Mine", False)
    assert headings("# R\n\n## Mine\na\n\n## Mine\nb\n", "## Mine", False) == 2


def test_provenance_names_the_command_without_machine_paths(monkeypatch):
    sys.path.insert(0, str(ROOT))
    from benchmarks import provenance

    monkeypatch.setattr(sys, "argv", [str(BENCH / "bench_html.py"), "--input", str(ROOT.parent / "shared" / "x.gz")])
    monkeypatch.delenv("MAKELEVEL", raising=False)
    assert provenance.command("bench-html") == "`python benchmarks/bench_html.py --input ../shared/x.gz`"
    monkeypatch.setenv("MAKELEVEL", "1")
    assert provenance.command("bench-html") == ("`make bench-html` "
                                                "(`python benchmarks/bench_html.py --input ../shared/x.gz`)")
    line = provenance.line("bench-html")
    assert line.startswith("Date: ") and " UTC. Machine: " in line and str(ROOT) not in line
    doc = "Title line.\n\n    usage (dropped)\n\nFirst point::\n\n1. one\n   more\n2. two\n"
    assert provenance.method(doc) == "Title line.\n\nFirst point:\n\n1. one more\n2. two"


@pytest.mark.parametrize("bad", ["notes.txt", "no_such_dir/RESULTS.md"])
def test_a_bad_results_path_is_one_error_line_and_exit_2(bad, tmp_path, capsys, monkeypatch):
    sys.path.insert(0, str(ROOT))
    from benchmarks import provenance

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        provenance.check_results(bad)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --results ") and err.count("\n") == 1
    provenance.check_results(str(tmp_path / "RESULTS.md"))  # a new file in an existing folder is fine
