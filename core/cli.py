"""Every command's conventions: exit codes, the one ``error:`` line, unknown options refused with a did-you-mean.

Exit status of every command (pipelines.*, mixtures.*, train.*, runs.*, filters.quality): 0 done, 2 unusable
input from the user (paths, options, configs; one ``error:`` line, no traceback; argparse's own errors are 2
too), 3 a stage's counts do not balance, 130 interrupted (Ctrl-C). Anything else is a bug or a crash, with its
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import NoReturn

EXIT_USAGE = 2
EXIT_UNBALANCED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a Ctrl-C'd command (train.run)


def fail(message: str) -> NoReturn:
    """Exit with status 2 and a clear one-line error (bad paths, options, configs)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def refuse_unknown_options(known: Iterable[str], argv: Iterable[str] | None) -> None:
    """Exit 2 with ``error: unknown option --treshold (did you mean --threshold?)`` for a ``--flag``
    (with or without ``=value``) not in ``known``, before argparse runs (which would report a missing
    required flag instead, or, in a Beam stage, let Beam discard it and run with the defaults)."""
    import difflib

    known = [k for k in known if k.startswith("--")]
    for token in sys.argv[1:] if argv is None else argv:
        if token == "--":
            break
        name = token.split("=", 1)[0]
        if name.startswith("--") and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            fail(f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else ""))


