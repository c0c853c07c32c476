"""``mocodec eval-rd``: a codec's rate-distortion curve (file bpp, PSNR, MS-SSIM, times) over qualities on an image folder."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from mocodec.commands.arguments import add_codec_arguments, add_scale_out_arguments, split_run
from mocodec.commands.output import print_results_table

NAME = "eval-rd"
HELP = "rate-distortion (file bpp, PSNR, MS-SSIM, times) of a codec over qualities"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_codec_arguments(parser)
    parser.add_argument("--qualities", default="1-8", help="e.g. 1-8, or 10,30,50 for jpeg/webp/avif")
    parser.add_argument("--dataset", required=True, help="folder of images (searched recursively)")
    parser.add_argument("--out", required=True, help="results JSON (CompressAI's schema + per-image records)")
    parser.add_argument("--plot", default=None, help="RD plot to write (.png/.pdf)")
    parser.add_argument("--compare", nargs="*", default=[], help="other results JSON files to draw beside")
    parser.add_argument("--force", action="store_true", help="overwrite --out/--plot if they exist")
    add_scale_out_arguments(parser)


def run(args: argparse.Namespace) -> None:
    from mocodec.evaluation.coding import CodecSpec, parse_qualities
    from mocodec.evaluation.distributed import run_sharded
    from mocodec.evaluation.plots import plot_curves
    from mocodec.evaluation.rd import eval_rd, eval_rd_shard
    from mocodec.evaluation.results import read_results, write_results
    from mocodec.files import check_writable
    from mocodec.utils.progress import progress_bar

    out = check_writable(args.out, args.force)
    plot = check_writable(args.plot, args.force) if args.plot else None
    others = [read_results(p) for p in args.compare]
    if args.checkpoint:
        spec = CodecSpec(args.codec, checkpoint=args.checkpoint, label=f"{args.codec}:{Path(args.checkpoint).stem}")
    else:
        spec = CodecSpec(args.codec, pretrained=args.pretrained, label=args.codec)
    shard, launched = split_run(args)
    if launched:
        results = run_sharded(functools.partial(eval_rd_shard, spec, parse_qualities(args.qualities), args.dataset, progress=progress_bar),
                              out, args.devices)
        if results is None:  # a torchrun rank other than 0: rank 0 reports
            return
    else:
        results = eval_rd(spec, parse_qualities(args.qualities), args.dataset, progress=progress_bar, shard=shard)
        write_results(out, results)
    print_results_table(results, ("quality", "bpp", "bpp-estimated", "psnr-rgb", "ms-ssim", "encoding_time", "decoding_time"))
    for path, why in results.get("skipped", []):
        print(f"skipped {path}: {why}", file=sys.stderr)
    if plot:
        plot_curves([results, *others], plot, metrics=("psnr-rgb", "ms-ssim"))
        print(f"plot: {plot}")
    print(f"results: {out}")
