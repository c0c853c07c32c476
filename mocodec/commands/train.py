"""``mocodec train``: LightningCLI's training command, configured by YAML (``--config``).

LightningCLI owns every argument after ``train`` (``fit``/``validate``, ``--config``,
``--model.lmbda 0.01``, its own ``--help``): :data:`PASSTHROUGH` tells the command line
to hand them over unparsed, as ``args.arguments``.
"""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "train a codec with LightningCLI: `train fit --config configs/train/tiny_cpu.yaml`; `train --help` lists its options"
PASSTHROUGH = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Shown by `mocodec --help` only: the arguments themselves never pass through argparse.
    parser.add_argument(
        "arguments",
        nargs=argparse.REMAINDER,
        metavar="...",
        help="LightningCLI's subcommand and arguments; `mocodec train --help` shows them",
    )


def run(args: argparse.Namespace) -> None:
    from mocodec.training import cli_main

    cli_main(args.arguments)
