"""Sweep throughput with the coding stage in worker processes (``--workers N``) against today's single-process loop.

    .venv/bin/python benchmarks/bench_sweep_pipeline.py [--imagenet ../shared/data/imagenet-sample] [--kodak ../shared/data/kodak]

Two workloads, each run with ``--workers 0`` (code and judge in one process, as before) and
with coding workers, interleaved, after a warm-up, on the same images:

- **eval-task**: ``--images`` labelled ImageNet-sample images, JPEG at 4 qualities and
  ``bmshj2018-hyperprior`` at 2 (seeded random weights: the work does not depend on the
  values), judged by EfficientNet-Lite0 (real offline weights), fidelity PSNR + MS-SSIM;
- **eval-rd**: the 24 Kodak images, JPEG at 4 qualities, PSNR + MS-SSIM (no judge).

Records are the same either way (checked: file bytes and judge outputs per record).
Prints images/s (coded and judged (image, rate point) pairs per second) and the ratios.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mocodec.evaluation.plan import plan_curves
from mocodec.evaluation.sweep import FidelityOnly, create_task_from_options, evaluate


def run(task, curves, folder: Path, workers: int, out: Path, options: dict) -> tuple[float, dict]:
    start = time.perf_counter()
    doc = evaluate(task, curves, out, folder, options, workers=workers, force=True).doc
    return time.perf_counter() - start, doc


def records(doc: dict) -> list[tuple]:
    return [(e["name"], r["id"], r["point"], r["bytes"], r.get("pred")) for e in doc["entries"] for r in e["per_image"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imagenet", type=Path, default=Path("../shared/data/imagenet-sample"))
    parser.add_argument("--kodak", type=Path, default=Path("../shared/data/kodak"))
    parser.add_argument("--images", type=int, default=100, help="ImageNet-sample images (the first classes, sorted)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for folder in (args.imagenet, args.kodak):
        if not folder.is_dir():
            print(
                f"bench_sweep_pipeline: {folder} does not exist; pass --imagenet / --kodak (see ../shared/data/README.md)", file=sys.stderr
            )
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "imagenet"
        for cls in sorted(p for p in args.imagenet.iterdir() if p.is_dir())[: args.images]:
            (subset / cls.name).mkdir(parents=True)
            for image in cls.iterdir():
                (subset / cls.name / image.name).symlink_to(image.resolve())
        judge = create_task_from_options("classification", {"model": "efficientnet_lite0"})
        workloads = [
            (
                "eval-task: Lite0, JPEG x4 + hyperprior x2",
                judge,
                plan_curves(["jpeg", "hp=bmshj2018-hyperprior"], ["jpeg=10,30,50,75", "hp=1,3"]),
                subset,
            ),
            ("eval-rd: Kodak, JPEG x4", FidelityOnly(), plan_curves(["jpeg"], ["jpeg=10,30,50,75"]), args.kodak),
        ]
        lines = ["| workload | workers | wall (s) | images/s | vs workers 0 |", "|---|---:|---:|---:|---:|"]
        for label, task, curves, folder in workloads:
            run(task, curves, folder, 0, Path(tmp) / "warm.json", {})  # warm-up: imports, models, file cache
            times: dict[int, list[float]] = {w: [] for w in [0, *args.workers]}
            docs = {}
            for _ in range(args.repeats):
                for workers in times:  # interleaved, so drifts of the machine hit every setting alike
                    seconds, docs[workers] = run(task, curves, folder, workers, Path(tmp) / f"w{workers}.json", {})
                    times[workers].append(seconds)
            same = all(records(docs[w]) == records(docs[0]) for w in args.workers)
            pairs = sum(len(e["per_image"]) for e in docs[0]["entries"])
            base = statistics.median(times[0])
            for workers, values in times.items():
                wall = statistics.median(values)
                lines.append(f"| {label} | {workers} | {wall:.1f} | {pairs / wall:.2f} | x{base / wall:.2f} |")
            lines.append(f"| ({label}: records identical across settings: {same}) | | | | |")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {datetime.date.today()}; median of {args.repeats} interleaved runs after a warm-up"
    )
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
