"""``make demo``: the main job on the embedded photographs, offline, on CPU.

Writes the held-out photographs to ``OUT/images``, evaluates JPEG and WebP
(and any learned checkpoint given) on them, and draws the RD figure ``OUT/rd.png``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from mocodec.cli import _guard, _print_table, _progress


def run(out: Path, checkpoints: list[str]) -> None:
    from mocodec.data.embedded import write_split
    from mocodec.evaluation.coding import CodecSpec
    from mocodec.evaluation.plots import plot_curves
    from mocodec.evaluation.rd import eval_rd
    from mocodec.evaluation.results import write_results

    images = out / "images"
    write_split(images, "val")
    specs = [(CodecSpec.parse(f"ckpt:{c}"), [1]) for c in checkpoints]
    specs += [(CodecSpec("jpeg", label="jpeg"), [10, 30, 50, 75, 90]), (CodecSpec("webp", label="webp"), [10, 30, 50, 75, 90])]
    entries = []
    for spec, qualities in specs:
        results = eval_rd(spec, qualities, images, progress=_progress)
        write_results(out / f"{spec.label}.json", results)
        print(f"== {spec.label}")
        _print_table(results, ("quality", "bpp", "psnr-rgb", "ms-ssim"))
        entries.append(results)
    plot = plot_curves(entries, out / "rd.png", metrics=("psnr-rgb", "ms-ssim"), title="held-out embedded photographs")
    print(f"RD plot: {plot}\nresults: {out}/*.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mocodec.demo", description=__doc__)
    parser.add_argument("--out", default="outputs/demo", type=Path)
    parser.add_argument("--checkpoint", action="append", default=[], help="learned codec checkpoint(s) to include")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    return _guard(lambda: run(args.out, args.checkpoint))


if __name__ == "__main__":
    sys.exit(main())
