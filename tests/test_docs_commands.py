"""Docs that cannot drift: every command shown in README.md and docs/*.md is checked against the code.

Commands are taken from fenced code blocks (lines starting with ``make``, ``python -m``, ``torchrun``,
``srun torchrun``; ``\\`` continuations joined, ``#`` comments dropped) and from inline code spans
(`` `make ...` ``, `` `python -m ...` ``, `` `torchrun ...` ``). Each is checked in a cheap mode that runs
nothing heavy:

- ``make VAR=v target``: the target exists (``make -n``), every variable set changes what the target runs
  (a sentinel value must show up in ``make -n``'s output: ``make train CONFIG=...`` fails, the variable is
  ``TRAIN_CONFIG``), and every ``python -m`` / ``python script.py`` line ``make -n`` prints is checked as below;
- ``python -m module args``: ``module --help`` exits 0 (a subcommand's ``--help`` where the first argument is one)
  and every ``--flag`` shown is in that help text, or is a Beam pipeline option for a stage whose help says it
  passes Beam options through; ``section.key=value`` overrides of ``train.run`` load with ``train.config``;
- ``torchrun`` / ``python -m torch.distributed.run``: its own flags against its ``--help``, then the ``-m``
  module as above.

``--help`` outputs are cached and gathered in parallel, so the whole file runs in well under a minute.
Placeholders (``...``, ``[optional]``, ``FILE``) are fine where a value goes; what is checked are names.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Commands shown in the docs that this test does not run, with the reason. Each must still occur in the docs
# (test_skips_are_current), so the list cannot outlive the commands it excuses.
SKIP = {
    "python -m pipelines.<stage> --help": "a placeholder for every stage; each stage's --help is run through the "
                                          "stage commands shown elsewhere",
}

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`((?:make|python3? -m|torchrun) [^`]*|make)`")
START = re.compile(r"^(?:\$ )?(?:srun )?(make|python3? -m|torchrun)\b")
SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
MAKE_VAR = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$", re.S)
SENTINEL = "DOCCHECK_SENTINEL_VALUE"


@dataclass(frozen=True)
class Command:
    where: str   # file:line
    text: str    # the command, continuations joined, comment dropped


def _strip_comment(line: str) -> str:
    """The line without a trailing shell comment (a ``#`` outside quotes that starts a word)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def extract_commands(path: Path) -> list[Command]:
    """Every make / python -m / torchrun command shown in one markdown file, in order."""
    text = path.read_text(encoding="utf-8")
    rel = path.relative_to(ROOT).as_posix()
    out: list[Command] = []
    for m in FENCE.finditer(text):
        if m.group(1).strip().lower() not in SHELL_LANGS:
            continue
        first = text.count("\n", 0, m.start(2)) + 1
        lines = m.group(2).split("\n")
        i = 0
        while i < len(lines):
            start = i
            line = _strip_comment(lines[i].strip())
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1].rstrip() + " " + _strip_comment(lines[i].strip())
            i += 1
            if START.match(line):
                out.append(Command(f"{rel}:{first + start}", line))
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for m in INLINE.finditer(prose):
        out.append(Command(f"{rel}:{prose.count(chr(10), 0, m.start()) + 1}", " ".join(m.group(1).split())))
    return out


def all_commands() -> list[Command]:
    return [c for path in DOCS for c in extract_commands(path)]


def _tokens(text: str) -> list[str]:
    """Shell words with the docs' notation removed: ``[``/``]`` of optional parts, ``...`` and ``|`` alternatives."""
    try:
        words = shlex.split(text)
    except ValueError:  # an unbalanced quote in prose-like usage: plain words are enough to find names
        words = text.split()
    out = []
    for w in words:
        w = w.strip("[]")
        if w and w not in ("...", "|"):
            out.append(w)
    return out


# ------------------------------------------------------------------------------------------ running things
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["PYTHONPATH"] = str(ROOT)
    return env


# One interpreter answers many ``--help`` calls (run as ``__main__`` one after the other, output captured), so
# Beam and torch are imported once rather than once per module: the import, not argparse, is what costs.
HELP_DRIVER = r"""
import contextlib, io, json, runpy, sys
out = {}
for argv in json.load(sys.stdin):
    buf = io.StringIO()
    sys.argv = [argv[-1] if argv[0] != "-m" else argv[1], *argv[2 if argv[0] == "-m" else 1:], "--help"]
    code = 0
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            if argv[0] == "-m":
                runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(argv[0], run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:
            code, _ = 1, buf.write(f"{type(exc).__name__}: {exc}")
    out[" ".join(argv)] = [code, buf.getvalue()]
sys.__stdout__.write("\n" + json.dumps(out))
"""
_HELPS: dict[tuple[str, ...], tuple[int, str]] = {}
_COLLECT: set[tuple[str, ...]] | None = None  # while set, run_help only records what would be asked


def batch_help(argvs: list[tuple[str, ...]]) -> None:
    """Answer ``--help`` for several argvs in one interpreter; any it cannot answer is asked alone later."""
    if not argvs:
        return
    proc = subprocess.run([sys.executable, "-c", HELP_DRIVER], input=json.dumps([list(a) for a in argvs]),
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    try:
        answers = json.loads(proc.stdout.rsplit("\n", 1)[-1])
    except ValueError:
        return
    for argv in argvs:
        if " ".join(argv) in answers:
            code, text = answers[" ".join(argv)]
            _HELPS[argv] = (code, text)


def run_help(argv: tuple[str, ...]) -> tuple[int, str]:
    """``python <argv> --help``: (exit code, stdout + stderr), from the batch or, if it has none, asked alone."""
    if _COLLECT is not None:
        _COLLECT.add(argv)
        return 0, ""
    if argv not in _HELPS:
        proc = subprocess.run([sys.executable, *argv, "--help"], cwd=ROOT, env=_env(), capture_output=True,
                              text=True, timeout=120)
        _HELPS[argv] = (proc.returncode, proc.stdout + proc.stderr)
    return _HELPS[argv]


@functools.cache
def make_n(args: tuple[str, ...]) -> tuple[int, str]:
    """``make -n args``: what make would run, nothing run (recursive ``$(MAKE)`` lines inherit ``-n``)."""
    proc = subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, (proc.stdout + proc.stderr).replace("\\\n", " ")


@functools.cache
def beam_flags() -> frozenset[str]:
    """Every option Beam's PipelineOptions subclasses register (what a Beam stage passes through)."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(add_help=False)
    todo, seen = [PipelineOptions], set()
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
                try:
                    sub._add_argparse_args(parser)
                except Exception:  # an option two subclasses both register: the first registration counts
                    pass
    return frozenset(parser._option_string_actions)


def _flag_in(flag: str, help_text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text) is not None


def _flags(words: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in words if w.startswith("--") and len(w) > 2]


# -------------------------------------------------------------------------------------------- the checks
def check_python(words: list[str]) -> list[str]:
    """``words`` after ``python``: ``-m module args`` or ``script.py args``. Returns the problems found."""
    if words[:1] == ["-m"]:
        target, args = words[1], words[2:]
        argv: tuple[str, ...] = ("-m", target)
        if "<" in target:
            return [f"placeholder module {target!r}: add the command to SKIP with a reason"]
    elif words and words[0].endswith(".py"):
        target, args = words[0], words[1:]
        if "argparse" not in (ROOT / target).read_text(encoding="utf-8"):
            return []  # a script without options: --help would run it
        argv = (target,)
    else:
        return []
    if target == "torch.distributed.run":
        return check_torchrun(args)
    rc, help_text = run_help(argv)
    if rc != 0:
        return [f"`{' '.join(argv)} --help` exits {rc}: {help_text.strip()[-300:]}"]
    choices = re.search(r"\{([\w,-]+)\}", help_text)
    if args and not args[0].startswith("-") and choices and args[0] in choices.group(1).split(","):
        argv = (*argv, args[0])
        rc, help_text = run_help(argv)
        if rc != 0:
            return [f"`{' '.join(argv)} --help` exits {rc}"]
    problems = []
    passes_beam = re.search(r"beam (pipeline )?option", help_text, re.I) is not None
    for flag in _flags(args):
        if _flag_in(flag, help_text) or (passes_beam and flag in beam_flags()):
            continue
        problems.append(f"`{' '.join(argv)}` has no option {flag}")
    if target == "train.run":
        problems += check_train_overrides(args)
    return problems


def check_train_overrides(args: list[str]) -> list[str]:
    """``section.key=value`` words of a train.run command must load with train.config (known keys, valid values)."""
    from train.config import apply_overrides, load_config

    overrides = [a for a in args if re.match(r"^[a-z_]+\.[a-z_.]+=", a)]
    shell = [o for o in overrides if "$" in o]  # a shell variable's value: the key is checked, not the value
    config = None
    if "--config" in args:
        path = ROOT / args[args.index("--config") + 1]
        config = path if path.is_file() else None
    try:
        apply_overrides({}, [o.split("=", 1)[0] + "=" for o in shell])
        load_config(config, [o for o in overrides if o not in shell])
    except Exception as exc:
        return [f"train.run overrides {overrides}: {exc}"]
    return []


TRACKED_DIRS = ("configs/", "data/", "mixtures/recipes/", "benchmarks/", "tests/data/")


def check_paths(words: list[str]) -> list[str]:
    """Paths into the repository's tracked directories (a value, or after ``=``) must exist: they are not outputs."""
    problems = []
    for w in words:
        value = w.split("=", 1)[1] if "=" in w else w
        value = value.strip("'\"")
        if value.startswith(TRACKED_DIRS) and not any(ch in value for ch in "$<>{}") and value.upper() != value:
            if not any(ROOT.glob(value)):
                problems.append(f"{value} does not exist")
    return problems


def check_torchrun(args: list[str]) -> list[str]:
    if "-m" not in args:
        return ["torchrun without -m MODULE"]
    i = args.index("-m")
    rc, help_text = run_help(("-m", "torch.distributed.run"))
    problems = [f"torchrun has no option {f}" for f in _flags(args[:i]) if not _flag_in(f, help_text)]
    return problems + check_python(args[i:])


def check_make(words: list[str]) -> list[str]:
    """``words`` after ``make``: targets exist, variables reach the targets' recipes, the recipes' commands check."""
    variables = {m.group(1): m.group(2) for w in words if (m := MAKE_VAR.match(w))}
    targets = [w for w in words if not MAKE_VAR.match(w) and not w.startswith("-")]
    args = tuple(f"{k}={v}" for k, v in variables.items()) + tuple(targets)
    rc, out = make_n(args)
    if rc != 0:
        return [f"`make -n {' '.join(args)}` exits {rc}: {out.strip()[-300:]}"]
    problems = []
    for name in variables:
        sentinel_args = tuple(f"{k}={SENTINEL if k == name else v}" for k, v in variables.items()) + tuple(targets)
        used = [line for line in make_n(sentinel_args)[1].splitlines() if SENTINEL in line]
        if not used:
            problems.append(f"make {' '.join(targets) or '(default)'}: {name}=... changes nothing it runs")
        elif all("exit 2" in line for line in used):  # only in a guard that stops the target
            problems.append(f"make {' '.join(targets)}: {name}=... is refused: {used[0].strip()[:200]}")
    for line in out.splitlines():
        m = re.search(r"(?:^|\s)\S*python3?\S* (-m \S+.*|\S+\.py\b.*)$", line)
        if m:
            problems += [f"make {' '.join(targets)} runs: {p}" for p in check_python(_tokens(m.group(1)))]
    return problems


def check(command: Command) -> list[str]:
    return check_paths(_tokens(command.text)) + _check(command)


def _check(command: Command) -> list[str]:
    words = _tokens(command.text)
    if words[:1] == ["srun"]:
        words = words[1:]
    if words[0] == "make":
        return check_make(words[1:])
    if words[0] == "torchrun":
        return check_torchrun(words[1:])
    return check_python(words[1:])


COMMANDS = all_commands()


@pytest.fixture(scope="module", autouse=True)
def _prefetch():
    """Warm the caches: a dry pass runs every make -n (in parallel) and records each --help the checks will ask,
    then two interpreters answer those (the Beam stages in one, the rest in the other)."""
    global _COLLECT
    _COLLECT = set()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(check, [c for c in COMMANDS if c.text not in SKIP]))
        wanted = sorted(_COLLECT)
    finally:
        _COLLECT = None
    beam = [a for a in wanted if a[:2] != ("-m", "torch.distributed.run") and a[-1].startswith("pipelines")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(batch_help, [beam, [a for a in wanted if a not in beam]]))
    yield


@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_doc_command(command: Command) -> None:
    if command.text in SKIP:
        pytest.skip(SKIP[command.text])
    problems = check(command)
    assert not problems, f"{command.where}: `{command.text}`\n  " + "\n  ".join(problems)


def test_extractor_finds_the_commands() -> None:
    """The extraction itself can fail: the README shows the demo, the stages and training."""
    texts = [c.text for c in COMMANDS]
    assert "make demo" in texts
    for stage in ("pipelines.clean", "pipelines.filter", "pipelines.dedup", "pipelines.tokenize", "train.run"):
        assert any(stage in t for t in texts), stage
    assert len(COMMANDS) > 100


def test_skips_are_current() -> None:
    texts = {c.text for c in COMMANDS}
    assert set(SKIP) <= texts, f"SKIP lists commands no doc shows any more: {set(SKIP) - texts}"


def test_checks_catch_drift() -> None:
    """Known drift the checks must report: a variable the target does not read, a misspelled flag, a bad key."""
    assert check(Command("x", "make train CONFIG=configs/train/llama1b.yaml NPROC=8"))
    assert check(Command("x", "python -m pipelines.dedup --input a --output b --treshold 0.8"))
    assert check(Command("x", "python -m train.run --config configs/train/tiny.yaml data.dri=work/demo/mix"))
    assert check(Command("x", "make no-such-target"))
    assert check(Command("x", "python -m train.run --config configs/train/tiny.yaml data.dir=data/demo/mixture"))
    assert not check(Command("x", "python -m pipelines.clean --input a --output b --direct_num_workers 2"))


def test_make_help_aligned() -> None:
    """`make help`: one row per documented target, every description starting in the same column."""
    proc = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    rows = [r for r in proc.stdout.splitlines() if r.strip()]
    columns = {len(r) - len(r[2:].split(None, 1)[1]) if len(r[2:].split(None, 1)) == 2 else -1 for r in rows}
    assert len(rows) > 20 and len(columns) == 1, rows
    assert "$(" not in proc.stdout  # the help text is the Makefile's text: a variable there prints unexpanded


def test_readme_lists_every_make_target() -> None:
    """The README's target table and `make help` name the same targets."""
    proc = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=60)
    listed = {r.split()[0] for r in proc.stdout.splitlines() if r.strip()}
    table = set(re.findall(r"^\| `make ([\w-]+)` \|", (ROOT / "README.md").read_text(encoding="utf-8"), re.M))
    assert listed == table, f"only in make help: {listed - table}; only in README: {table - listed}"
