"""PCMP build in 1 and in N worker processes (``mocodec pcmp --workers``): wall time, speed-up, same files.

    .venv/bin/python benchmarks/bench_pcmp_workers.py --references ../shared/data/imagenet-sample \
        --subset 0/25 --workers 1 2

Builds the same references (default families, EfficientNet-Lite0/1/2 voters, 0.5 dB, 256 px) once
per worker count, each into a fresh folder, and prints each build's wall time, distorted images
per second, the speed-up over the first count, and whether every build wrote the same
``pairs.csv`` (it must: draws are seeded per reference). Without ``--references`` it builds the
embedded held-out photographs. Run it alone: the figure is the machine's, not a shared one's.
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--references", type=Path, help="a folder of images (default: the embedded held-out photographs)")
    parser.add_argument("--subset", help="I/N: every N-th reference, as `mocodec pcmp --subset`")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-size", type=int, default=256)
    args = parser.parse_args()

    from mocodec.data.embedded import write_split
    from mocodec.iqa.distortions import DEFAULT_FAMILIES, create_family
    from mocodec.iqa.pcmp import BuildSettings, build_pcmp
    from mocodec.iqa.voting import create_voter

    work = Path(tempfile.mkdtemp(prefix="bench-pcmp-workers-"))
    references = args.references
    if references is None:
        references = work / "photos"
        write_split(references, "val")
    families = [create_family(f) for f in DEFAULT_FAMILIES]
    voters = [create_voter(f"efficientnet_lite{k}") for k in range(3)]
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    first: tuple[float, bytes] | None = None
    for workers in args.workers:
        out = work / f"pcmp-{workers}"
        start = time.perf_counter()
        summary = build_pcmp(references, out, families, voters, BuildSettings(max_size=args.max_size), subset=args.subset, workers=workers)
        seconds = time.perf_counter() - start
        pairs = (out / "pairs.csv").read_bytes()
        first = first or (seconds, pairs)
        print(
            f"--workers {workers}: {summary['references']} references, {summary['images']} distorted images, "
            f"{summary['pairs']} pairs in {seconds:.1f} s ({summary['images'] / seconds:.2f} images/s, "
            f"x{first[0] / seconds:.2f} of --workers {args.workers[0]}); pairs.csv same as the first build: {pairs == first[1]}"
        )


if __name__ == "__main__":
    main()
