"""Arguments several commands share: a codec and its weights, and what every sweep takes (and how it runs)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

DEFAULT_KEEP_CROPS = 8  # images whose decoded crops a sweep keeps for `mocodec report`: a page's worth, some MB


def add_codec_arguments(parser: argparse.ArgumentParser) -> None:
    """``--codec``, ``--checkpoint``, ``--pretrained``: a registered codec and where its weights come from."""
    parser.add_argument("--codec", default="bmshj2018-hyperprior", help="registry name (see `mocodec list`)")
    parser.add_argument("--checkpoint", default=None, help="weights file: CompressAI state dict or mocodec export/checkpoint")
    parser.add_argument("--pretrained", action="store_true", help="use the published weights (downloaded once, cached)")


def add_sweep_arguments(parser: argparse.ArgumentParser, fidelity: str) -> None:
    """What every sweep (eval-rd, eval-task) takes: fidelity metrics, chunking, coding workers, ``--devices``/``--shard``."""
    parser.add_argument(
        "--fidelity",
        default=fidelity,
        help="what to measure of each decoded image: psnr-rgb, ms-ssim, "
        f"bpp-estimated (the likelihood rate of learned codecs), or none (default {fidelity})",
    )
    parser.add_argument(
        "--codec-device", default="cpu", help="where learned codecs' transforms run, e.g. cuda (entropy coding stays on the CPU)"
    )
    parser.add_argument("--chunk-size", type=int, default=16, help="images read and judged together")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="coding processes (read, encode, decode, measure) feeding the judge; 0: code in the judge's process",
    )
    parser.add_argument("--devices", type=int, default=1, help="split the images across this many processes and merge their results")
    parser.add_argument(
        "--shard", default=None, metavar="I/N", help="judge only shard I of N (0-based) into --out; join the shards with `mocodec merge`"
    )
    parser.add_argument(
        "--keep-crops",
        type=int,
        default=DEFAULT_KEEP_CROPS,
        metavar="N",
        help=f"keep centre crops of the original and decoded images of the N images where the curves disagree most, "
        f"in a folder beside --out (OUT.crops/), for `mocodec report`; 0: none (default {DEFAULT_KEEP_CROPS})",
    )
    parser.add_argument(
        "--keep-images", default=None, metavar="ID[,ID...]", help="also keep the crops of these images (ids as the results file names them)"
    )
    parser.add_argument("--force", action="store_true", help="start --out afresh and overwrite --plot")


def run_sweep(
    args: argparse.Namespace, make_task: Callable[[], Any], curves: Sequence[Any], dataset_options: dict[str, Any]
) -> dict | None:
    """Run (or resume) the sweep ``args`` ask for: here, in ``--devices`` processes, or as one ``--shard``; the document.

    ``make_task`` builds the judge (in each process of a split run). Returns None on torchrun ranks other than 0.
    """
    # Imported here, as every command's library: building the parser stays cheap (see mocodec.commands).
    from mocodec.evaluation.metrics import parse_fidelity
    from mocodec.evaluation.shards import split_run
    from mocodec.evaluation.sweep import evaluate, evaluate_split
    from mocodec.utils.progress import progress_bar

    shard, launched = split_run(args.shard, args.devices)
    options = {
        "fidelity": parse_fidelity(args.fidelity),
        "codec_device": args.codec_device,
        "chunk_size": args.chunk_size,
        "workers": args.workers,
        "progress": progress_bar,
        "keep_crops": args.keep_crops,
        "keep_images": [i.strip() for i in (args.keep_images or "").split(",") if i.strip()],
    }
    dataset = args.dataset[0] if args.dataset and len(args.dataset) == 1 else args.dataset  # --dataset, repeatable
    if launched:
        return evaluate_split(make_task, curves, args.out, dataset, dataset_options, args.devices, force=args.force, **options)
    return evaluate(make_task(), curves, args.out, dataset, dataset_options, force=args.force, shard=shard, **options).doc
