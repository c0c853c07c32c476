"""``mocodec experiment``: train codecs on several distortion terms, judge them by tasks, report rate-task curves and BD-rates."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "experiment"
HELP = "train codecs on several distortion terms, judge them by tasks, report rate–task curves and BD-rates"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="experiment recipe (YAML), e.g. configs/experiments/offline_small.yaml")
    parser.add_argument("--out", default=None, help="results folder (default: experiments/<recipe name>); rerun to resume")
    parser.add_argument("--jobs", type=int, default=1, help="training runs at once, each with 1/JOBS of the threads (default 1)")
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="train for this long, then stop with every run resumable (nothing is judged until all runs finish); rerun to go on",
    )
    parser.add_argument(
        "--state",
        default=None,
        help="folder that keeps each run's resumable state (e.g. committed, or carried to another machine): "
        "restored before training, written after each run or stretch",
    )
    parser.add_argument(
        "--accelerator",
        default=None,
        help="train this invocation's runs here instead of where the recipe says: gpu, cpu or auto (Lightning's names); "
        "the runs and their kept state stay the same runs",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="re-analyse the recorded results in --out and rewrite figures, tables, summary.json and report.md; never trains or judges",
    )


def run(args: argparse.Namespace) -> None:
    from mocodec.experiment import Stretch, load_recipe, rewrite_report, run_experiment
    from mocodec.utils.progress import progress_bar

    recipe = load_recipe(args.config)
    out = Path(args.out or Path("experiments") / recipe.name)
    command_line = f"mocodec experiment --config {args.config}" + (f" --out {args.out}" if args.out else "")
    log = lambda line: print(line, flush=True)  # noqa: E731  (a run takes minutes: progress lines must not wait in a pipe's buffer)
    if args.report_only:
        rewrite_report(recipe, out, log=log, command=f"{command_line} --report-only")
        return
    command_line += f" --jobs {args.jobs}" if args.jobs != 1 else ""
    command_line += f" --state {args.state}" if args.state else ""
    stretch = Stretch.of(args.minutes, args.state, args.accelerator)
    run_experiment(recipe, out, log=log, progress=progress_bar, command=command_line, jobs=args.jobs, stretch=stretch)
