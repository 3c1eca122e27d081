"""Entry point: ``python -m train.run [--nproc-per-node N] --config FILE [section.key=value ...]``.

With ``--nproc-per-node N`` (N > 1) it launches N ranks through torchrun itself; without it, it is
one rank: a single process, or one of the ranks that ``torchrun ... -m train.run`` starts (the same
code path either way).

Ctrl-C or SIGTERM: every rank stops between two steps, at the same step, and one line says where
(``train: interrupted at step 37; last checkpoint step 30; rerun the same command to resume``);
exit status 130. Under the launcher, torchrun and the ranks run in a session of their own, so
Ctrl-C reaches only the launcher, which hands it on to the ranks as SIGTERM: torchrun (which would
print a traceback of its own on a signal) ignores both. A second Ctrl-C kills the ranks at once.
Launched by a plain ``torchrun`` instead, the ranks stop the same way, but torchrun reports them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys

from core.cli import EXIT_INTERRUPTED, fail, refuse_unknown_options
from train.interrupt import LAUNCHER_ENV, StopOnSignal

# torchrun handles only SIGHUP: it starts with SIGINT and SIGTERM ignored, which its ranks inherit until
# train.run installs its handler (first thing, before torch is imported).
TORCHRUN_SIGNALS = "SIGHUP"


def _ignore_stop_signals() -> None:  # in the torchrun child, before exec
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, from Linux's /proc (torchrun starts each rank in a session
    of its own, so a signal to torchrun's process group does not reach them)."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                    fields = f.read().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
            except (OSError, IndexError):
                continue
            if len(fields) > 1 and fields[1] == str(pid):
                found.append(int(entry))
    return found


def launch(nproc: int, argv: list[str], poll_s: float = 0.5) -> int:
    """Run ``train.run argv`` on ``nproc`` ranks under torchrun (standalone, this machine); returns the
    exit status: torchrun's, or 130 after Ctrl-C/SIGTERM (rank 0 printed where the ranks stopped).

    After a signal, every ``poll_s`` seconds until torchrun exits, each rank gets SIGTERM (again: a
    rank still starting up ignores it until it installs its handler; a repeated SIGTERM is harmless);
    after a second signal, SIGKILL."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           f"--signals-to-handle={TORCHRUN_SIGNALS}", "-m", "train.run", *argv]
    env = {**os.environ, LAUNCHER_ENV: "1"}
    signals: list[int] = []
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_ignore_stop_signals)
        for sig in previous:
            signal.signal(sig, lambda signum, frame: signals.append(signum))
        while True:
            try:
                rc = proc.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                pass
            if signals:
                hard = len(signals) > 1
                for pid in _children(proc.pid) + ([proc.pid] if hard else []):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if signals:
        if len(signals) > 1:
            print("train: stopped at once (second signal); rerun the same command to resume from the last "
                  "checkpoint", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    return rc


def main(argv: list[str] | None = None) -> None:
    stop = StopOnSignal().install()  # before torch is imported: a signal during the start is not lost
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file with model/data/optim/train sections (docs/training.md)")
    parser.add_argument("--nproc-per-node", type=int, default=0,
                        help="launch this many ranks through torchrun (default: run as one rank)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=3e-4 train.strategy=ddp")
    refuse_unknown_options(parser._option_string_actions, argv)  # --confg: exit 2 with one line
    args = parser.parse_args(argv)
    if args.nproc_per_node < 0:
        fail("train.run: --nproc-per-node must be >= 0")
    from train.config import ConfigError, load_config

    if args.nproc_per_node > 1:
        stop.restore()
        try:  # a config error: one line here, not one per rank and torchrun's report
            load_config(args.config, args.overrides)
        except ConfigError as exc:
            fail(f"train.run: {exc}")
        rest = (["--config", args.config] if args.config else []) + args.overrides
        sys.exit(launch(args.nproc_per_node, rest))

    from train.interrupt import TrainingInterrupted
    from train.trainer import train

    try:  # a config the user must fix: one line and exit 2 on every rank, no traceback
        train(load_config(args.config, args.overrides), stop)
    except ConfigError as exc:
        fail(f"train.run: {exc}")
    except TrainingInterrupted as exc:
        # stopped: a SIGTERM the launcher repeats must not kill the rank while Python shuts down (which
        # puts the default action back on a signal with a Python handler, but leaves an ignored one so)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"train: {exc.message}", file=sys.stderr, flush=True)
        # under the launcher: exit 0 (torchrun reports a failed worker otherwise); the launcher exits 130
        sys.exit(0 if os.environ.get(LAUNCHER_ENV) else EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
