"""``mocodec eval-rd``: a codec's rate-distortion curve (file bpp, PSNR, MS-SSIM, times) on an image folder: the sweep without a judge."""

from __future__ import annotations

import argparse
from pathlib import Path

from mocodec.commands.arguments import add_sweep_arguments, run_sweep
from mocodec.commands.output import print_entries
from mocodec.errors import ConfigError

NAME = "eval-rd"
HELP = "rate-distortion (file bpp, PSNR, MS-SSIM, times) of a codec over qualities"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--codec", default=None, help="registry name (see `mocodec list`; default bmshj2018-hyperprior, or the checkpoint's own)"
    )
    parser.add_argument("--checkpoint", default=None, help="trained weights: one rate point (a glob of several files: one point each)")
    parser.add_argument("--pretrained", action="store_true", help="use the published weights (downloaded once, cached)")
    parser.add_argument(
        "--qualities",
        default=None,
        help="e.g. 1-4 or 10,30,50 (default: every quality a learned codec has, a classic codec's 5,10,20,30,50,75,95)",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        required=True,
        help="folder of images (searched recursively); repeat it to measure several folders as one dataset",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="results JSON (the curve in CompressAI's schema, plus per-image records); an existing file of the same run is resumed",
    )
    parser.add_argument("--plot", default=None, help="RD plot to write (.png/.pdf)")
    parser.add_argument("--compare", nargs="*", default=[], help="other results files (e.g. CompressAI's published curves) to draw beside")
    add_sweep_arguments(parser, fidelity="psnr-rgb,ms-ssim,bpp-estimated")


def curve_text(args: argparse.Namespace) -> str:
    """The one curve eval-rd codes, in eval-task's ``--codecs`` syntax: a checkpoint is one rate point."""
    if args.checkpoint and (args.pretrained or args.qualities):
        raise ConfigError(
            "a checkpoint is one rate point (its quality is recorded in the file): drop --pretrained/--qualities, "
            "or give several checkpoints with a glob"
        )
    if args.checkpoint:
        return f"{args.codec}:{args.checkpoint}" if args.codec else f"ckpt:{args.checkpoint}"
    codec = args.codec or "bmshj2018-hyperprior"
    return f"{codec}@pretrained" if args.pretrained else codec


def run(args: argparse.Namespace) -> None:
    from mocodec.evaluation.plan import plan_curves
    from mocodec.evaluation.plots import plot_results
    from mocodec.evaluation.results import read_curves
    from mocodec.evaluation.sweep import FidelityOnly
    from mocodec.files import check_writable

    resuming = Path(args.out).is_file() and not args.force  # an unrelated file is refused by the sweep
    plot = check_writable(args.plot, args.force or resuming) if args.plot else None
    others = read_curves(args.compare)[0] if args.compare else []
    curves = plan_curves([curve_text(args)], [args.qualities] if args.qualities else [])
    doc = run_sweep(args, FidelityOnly, curves, {})
    if doc is None:  # a torchrun rank other than 0: rank 0 reports
        return
    print_entries(doc)
    if plot:
        plot_results(doc, plot, others=others)
        print(f"plot: {plot}")
    print(f"results: {args.out}{' (resumed)' if resuming else ''}")
