"""Entry point: ``torchrun --nproc_per_node=N -m train.run --config FILE [section.key=value ...]``.

Also runs as a single process (``python -m train.run ...``) through the same code path.
"""

from __future__ import annotations

import argparse

from pipelines import fail
from train.config import ConfigError, load_config
from train.trainer import train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file with model/data/optim/train sections (docs/training.md)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=3e-4 train.strategy=ddp")
    args = parser.parse_args(argv)
    try:  # a config the user must fix: one line and exit 2 on every rank, no traceback
        train(load_config(args.config, args.overrides))
    except ConfigError as exc:
        fail(f"train.run: {exc}")


if __name__ == "__main__":
    main()
