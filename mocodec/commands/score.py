"""``mocodec score``: distorted images against their references, one metric, a per-image CSV (see :mod:`mocodec.scoring`)."""

from __future__ import annotations

import argparse
import sys

NAME = "score"
HELP = "score distorted images against references (per-image CSV): ML-CLIPSim, PSNR, MS-SSIM, LPIPS, ..."

# The metric factory's keyword -> the option that sets it; a metric accepts the options its factory takes.
METRIC_OPTIONS = {
    "model": "--model",
    "net": "--net",
    "pretrained": "--pretrained",
    "layers": "--layers",
    "layer_weights": "--weights",
    "global_weight": "--global-weight",
    "resize_mode": "--resize-mode",
    "include_cls": "--include-cls",
}


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, e.g. 1,1,1,1; got '{text}'") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", help="reference image, or a folder of them (searched recursively)")
    parser.add_argument("distorted", help="distorted image, or a folder: pairs are matched by file name, extension ignored")
    parser.add_argument("--metric", default="ml-clipsim", help="psnr, msssim, lpips, ml-clipsim, ml-featsim, ... (see `mocodec list`)")
    parser.add_argument(
        "--model", help="ml-clipsim: open_clip model (ViT-B-32, ViT-B-16, ...) or timm:NAME; ml-featsim: efficientnet-lite0/1/2"
    )
    parser.add_argument("--net", help="lpips backbone: alex, vgg or squeeze")
    parser.add_argument("--pretrained", help="pretrained tag (ml-clipsim: openai, laion2b_s34b_b79k, ...) or a local weights file")
    parser.add_argument("--layers", help="1-based block numbers, e.g. 3,6,9,12 (negatives count from the end), or all")
    parser.add_argument("--weights", dest="layer_weights", type=_floats, help="one weight per layer, e.g. 1,1,1,1 (default uniform)")
    parser.add_argument("--global-weight", type=float, help="weight of the global-embedding term (default 1; all weights are normalised)")
    parser.add_argument("--resize-mode", choices=("resize", "tiles", "none", "auto"), help="how images reach the encoder's input size")
    parser.add_argument("--include-cls", action="store_true", default=None, help="also compare the class tokens")
    parser.add_argument("--out", help="write the CSV to this file instead of printing it")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def run(args: argparse.Namespace) -> None:
    from mocodec.files import atomic_write_text, check_writable
    from mocodec.scoring import score_pairs
    from mocodec.utils.progress import progress_bar

    out = check_writable(args.out, args.force) if args.out else None
    options = {key: getattr(args, key) for key in METRIC_OPTIONS if getattr(args, key) is not None}
    scores = score_pairs(args.reference, args.distorted, args.metric, options=options, spelled=METRIC_OPTIONS, progress=progress_bar)
    for why in scores.skipped:
        print(f"skipped: {why}", file=sys.stderr)
    if out:
        atomic_write_text(out, scores.to_csv())
    else:
        print(scores.to_csv(), end="")
    for p in scores.unmatched:
        print(f"unmatched: {p} has no reference", file=sys.stderr)
    direction = "higher" if scores.higher_is_better else "lower"
    print(f"{scores.metric}: mean {scores.mean():.6f} over {len(scores.rows)} image pairs ({direction} is better)", file=sys.stderr)
