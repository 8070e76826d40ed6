"""``cemssl-ik``: command-line interface to the library (no ROS needed).

Subcommands:
    fk            forward kinematics of one configuration
    ik-analytic   all closed-form solutions of a UR3 pose
    train         train a model by a recipe (phases: pretrain, fkloss, cemssl, residual), from scratch or a checkpoint
    eval          precision of a model alone on held-out targets
    bench fk      FK throughput vs a reference library

The package holds one module per command group, each with a ``register`` function that adds its
subparser(s); ``main`` is the console-script entry point (``python -m cemssl_ik.cli`` runs it too).
"""

from __future__ import annotations

import sys
from typing import Sequence

from . import bench, geometry, model, train
from .bench import _adaptation_key as _adaptation_key  # re-exported: the tests read the adaptation records through them
from .bench import _adaptation_records as _adaptation_records
from .common import CLIError as CLIError
from .common import _ArgumentParser

__all__ = ["main"]


def build_parser() -> _ArgumentParser:
    parser = _ArgumentParser(prog="cemssl-ik", description="Multi-solution learned inverse kinematics (CEMSSL).")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (geometry, train, model, bench):
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("cemssl-ik: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError) as exc:
        print(f"cemssl-ik: error: {exc}", file=sys.stderr)
        return 2

