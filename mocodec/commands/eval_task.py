"""``mocodec eval-task``: rate-task curves, a dataset coded at many rates and the decoded images judged by a task."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from mocodec.commands.arguments import add_sweep_arguments, run_sweep
from mocodec.commands.bd import print_bd_table
from mocodec.commands.output import print_entries

NAME = "eval-task"
HELP = "rate-task curves: code a dataset at many rates, judge the decoded images with a task"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="classification", help="task registry name (see `mocodec list`)")
    parser.add_argument(
        "--model", default=None, help="the task's judge, e.g. efficientnet_lite0 (offline), resnet50 (timm), torchvision:resnet50"
    )
    parser.add_argument("--weights", default=None, help="local weights file for --model instead of the published ones")
    parser.add_argument("--random-init", action="store_true", help="judge with a randomly initialised model (smoke tests)")
    parser.add_argument("--device", default=None, help="device of the task's model, e.g. cuda")
    parser.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE", help="another task argument, e.g. batch_size=64")
    parser.add_argument(
        "--codecs",
        action="append",
        default=None,
        metavar="LIST",
        help="comma-separated curves: NAME, NAME@pretrained, ckpt:PATH, or ckpt:GLOB (a series of checkpoints, one curve); "
        "LABEL=... names a curve (default: jpeg,webp)",
    )
    parser.add_argument(
        "--qualities",
        action="append",
        default=[],
        metavar="[KEY=]LIST",
        help="rate points, e.g. jpeg=10,30,50 or 1-8; KEY is a curve label, a codec name, 'classic' or 'learned' "
        "(defaults: each codec's own: classic 5,10,20,30,50,75,95, learned every quality it has (`mocodec list`); checkpoints: theirs)",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        default=None,
        help="image folder (ImageNet ImageFolder / LOC csv layout, or unlabeled); default: the task's offline set. "
        "Repeat it to judge several folders as one dataset; a folder's own options as '{root: FOLDER, classes: 1/2}'",
    )
    parser.add_argument(
        "--dataset-option", action="append", default=[], metavar="KEY=VALUE", help="e.g. layout=unlabeled, labels=PATH.csv (every folder)"
    )
    parser.add_argument("--out", required=True, help="results JSON; an existing file of the same task, model and dataset is resumed")
    parser.add_argument("--plot", default=None, help="rate-task figure (.png/.pdf), one panel per metric; redrawn when resuming")
    parser.add_argument("--anchor", default=None, help="curve the BD table compares against (default: the first)")
    parser.add_argument("--bd-metric", default="agreement", help="metric of the BD table (default: agreement)")
    parser.add_argument("--bd-method", default="pchip", help="BD interpolation: pchip, akima or cubic")
    add_sweep_arguments(parser, fidelity="psnr-rgb,ms-ssim")


def run(args: argparse.Namespace) -> None:
    from mocodec.evaluation.plan import plan_curves
    from mocodec.evaluation.plots import plot_results
    from mocodec.evaluation.sweep import create_task_from_options
    from mocodec.files import check_writable
    from mocodec.utils.options import parse_key_values

    options = parse_key_values(args.task_option, "--task-option")
    options.update({k: v for k, v in (("model", args.model), ("weights", args.weights), ("device", args.device)) if v is not None})
    if args.random_init:
        options["pretrained"] = False
    curves = plan_curves(args.codecs or ["jpeg,webp"], args.qualities)
    resuming = Path(args.out).is_file() and not args.force  # an unrelated file is refused by the sweep
    plot = check_writable(args.plot, args.force or resuming) if args.plot else None
    make_task = functools.partial(create_task_from_options, args.task, options)  # each process of a split run builds its own judge
    doc = run_sweep(args, make_task, curves, parse_key_values(args.dataset_option, "--dataset-option"))
    if doc is None:  # a torchrun rank other than 0: rank 0 reports
        return
    print_entries(doc)
    shown = [m for m in doc["metrics"] if any(v is not None for e in doc["entries"] for v in e["results"].get(m, []))]
    if len(doc["entries"]) > 1 and args.bd_metric in shown:
        print_bd_table(doc["entries"], args.anchor, args.bd_metric, args.bd_method, doc["metrics"][args.bd_metric]["higher_is_better"])
    if plot:
        plot_results(doc, plot)
        print(f"plot: {plot}")
    print(f"results: {args.out}{' (resumed)' if resuming else ''}")
