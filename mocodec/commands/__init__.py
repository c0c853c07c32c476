"""The ``mocodec`` command line: one module per command, each a thin layer over the library.

A command module declares ``NAME``, ``HELP`` (its one-line help), ``add_arguments(parser)``
and ``run(args)``; :data:`COMMANDS` lists them in the order ``mocodec --help`` shows them,
and :func:`main` builds the parser from that list and runs the chosen command under
:func:`run_guarded`: a :class:`~mocodec.errors.MocodecError` becomes one line on stderr,
``mocodec: error: ...``, and exit status 2; Ctrl-C exits with 130, without a traceback.
Arguments several commands share are in :mod:`mocodec.commands.arguments`.

Start-up: building the parser imports every command module, so a command module imports
only the standard library and this package at its top. Each ``run`` imports the library
entry points it calls itself -- the one deliberate lazy import of every command -- so
``mocodec --help`` and argument errors stay fast and never import torch, compressai,
transformers or ultralytics.

``mocodec train`` belongs to LightningCLI: a command whose module sets ``PASSTHROUGH``
gets every argument after its name unparsed, as ``args.arguments`` (so ``mocodec train
--help`` is LightningCLI's help and ``--model.lmbda 0.01`` reaches it as typed).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from mocodec.commands import (
    bd,
    compress,
    decompress,
    eval_rd,
    eval_task,
    experiment,
    export,
    iqa,
    list_names,
    merge,
    pcmp,
    report,
    score,
    train,
)
from mocodec.errors import MocodecError
from mocodec.utils.memory import keep_freed_memory

COMMANDS = (compress, decompress, eval_rd, score, train, export, pcmp, iqa, eval_task, bd, report, merge, experiment, list_names)


def build_parser() -> argparse.ArgumentParser:
    """The ``mocodec`` parser: one subcommand per module of :data:`COMMANDS`; ``args.run`` is the chosen command's ``run``."""
    parser = argparse.ArgumentParser(prog="mocodec", description="machine-oriented learned image compression")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        passthrough = getattr(module, "PASSTHROUGH", False)
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP, add_help=not passthrough)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed ``argv``; a passthrough command's arguments are kept as they are, in ``args.arguments``."""
    passthrough = {module.NAME: module for module in COMMANDS if getattr(module, "PASSTHROUGH", False)}
    if argv and argv[0] in passthrough:
        return argparse.Namespace(command=argv[0], arguments=list(argv[1:]), run=passthrough[argv[0]].run)
    return build_parser().parse_args(argv)


def run_guarded(fn: Callable[[], int | None]) -> int:
    """``fn()``'s exit status (None is 0); a MocodecError is printed as one line and gives 2, Ctrl-C gives 130."""
    try:
        return int(fn() or 0)
    except MocodecError as exc:
        print(f"mocodec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mocodec: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """``mocodec COMMAND ...`` (``argv`` defaults to the process's arguments); the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # compressai's import warns about torch.jit.script; it is noise for a CLI user.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    args = parse_arguments(argv)
    keep_freed_memory()  # commands loop over images and steps: their tensors' memory is reused, not faulted in anew
    return run_guarded(lambda: args.run(args))


__all__ = ["COMMANDS", "build_parser", "main", "parse_arguments", "run_guarded"]
