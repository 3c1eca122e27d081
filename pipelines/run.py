"""``python -m pipelines.run`` moved to ``python -m run`` (the run layer, run/, chains every package's stages).

Kept so that an old command line or script gets one clear line instead of "No module named pipelines.run".
"""

import sys

if __name__ == "__main__":
    args = " ".join(sys.argv[1:])
    print(f"error: the run orchestrator is now `python -m run` (run/orchestrator.py): python -m run {args}".rstrip(),
          file=sys.stderr)
    sys.exit(2)
