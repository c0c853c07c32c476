"""``mocodec pcmp``: build a PCMP dataset, PSNR-matched distortion pairs labelled by prediction-consistency votes."""

from __future__ import annotations

import argparse
import sys

NAME = "pcmp"
HELP = "build a PCMP dataset: PSNR-matched distortion pairs labelled by prediction-consistency votes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="dataset folder to write (an interrupted build in it is resumed)")
    parser.add_argument("--references", required=True, help="folder of reference images (searched recursively)")
    parser.add_argument(
        "--subset", default=None, metavar="I/N", help="keep every N-th reference, starting at the I-th, of the sorted references"
    )
    parser.add_argument(
        "--distortions",
        nargs="+",
        default=None,
        metavar="FAMILY[=LEVELS]",
        help="distortion families and optional levels, e.g. jpeg=10,30 gaussian-blur=1,2 ckpt:PATH NAME@pretrained=1-8 "
        "(default: jpeg webp avif gaussian-blur gaussian-noise resample contrast colour-shift)",
    )
    parser.add_argument(
        "--voters",
        nargs="+",
        default=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"],
        metavar="MODEL[=WEIGHTS]",
        help="classifiers that vote (classification-task model names; default: EfficientNet-Lite0/1/2)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.5,
        help="largest PSNR difference of a pair, in dB (default 0.5); pcmp.json also counts the pairs other tolerances give",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of noise, pair order and pair sampling")
    parser.add_argument("--max-pairs", type=int, default=None, help="keep at most this many pairs per reference (sampled with --seed)")
    parser.add_argument("--max-size", type=int, default=None, help="downscale references whose longer side exceeds this many pixels")
    parser.add_argument("--soft", choices=("kl", "cosine"), default="kl", help="soft consistency deciding a vote when top-1 does not")
    parser.add_argument("--tie-tolerance", type=float, default=1e-6, help="soft values closer than this tie (half a vote each)")
    parser.add_argument("--force", action="store_true", help="delete a previous build in OUT and start again")
    parser.add_argument(
        "--workers", type=int, default=1, help="build references in this many processes (e.g. the number of cores; default 1)"
    )


def run(args: argparse.Namespace) -> None:
    from mocodec.iqa.distortions import DEFAULT_FAMILIES, create_family
    from mocodec.iqa.pcmp import BuildSettings, build_pcmp, find_references
    from mocodec.iqa.voting import VoteRule, create_voter
    from mocodec.utils.progress import progress_bar

    find_references(args.references)  # before loading any model
    settings = BuildSettings(args.tolerance, args.seed, args.max_pairs, args.max_size, VoteRule(args.soft, args.tie_tolerance))
    families = [create_family(spec) for spec in args.distortions or DEFAULT_FAMILIES]
    voters = [create_voter(spec) for spec in args.voters]
    summary = build_pcmp(
        args.references,
        args.out,
        families,
        voters,
        settings,
        subset=args.subset,
        force=args.force,
        progress=progress_bar,
        workers=args.workers,
    )
    print(f"{args.out}: {summary['pairs']} pairs of {summary['images']} distorted images of {summary['references']} references")
    print("pairs per PSNR tolerance: " + ", ".join(f"{t} dB: {n}" for t, n in summary["pairs_per_tolerance"].items()))
    for name, stats in summary["voters"].items():
        print(f"  {name}: top-1 kept on {stats['top1_match_rate']:.1%} of images, mean KL {stats['mean_kl']:.4f}")
    for item in summary["skipped"]:
        print(f"skipped {item['reference']}: {item['why']}", file=sys.stderr)
