"""Evaluation throughput with 1 vs 2 CPU processes: ``eval-task`` images/s, split with ``--devices``.

The judge is EfficientNet-Lite0 with its real weights (offline), the images the 62
embedded 288 px tiles, the codec JPEG at two qualities: every image is coded, decoded and
judged twice. One process uses all CPU threads; two processes share them (one each on a
2-core machine). Wall time includes the second process's start (imports, model build)
and the merge, so the figure is what a user sees.

    OMP_NUM_THREADS=2 python benchmarks/bench_scaling.py [--devices 1,2] [--qualities 30,70]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from mocodec.evaluation.plan import plan_curves
from mocodec.evaluation.sweep import create_task_from_options, evaluate, evaluate_split

OPTIONS = {"model": "efficientnet_lite0"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="1,2")
    parser.add_argument("--qualities", default="30,70")
    args = parser.parse_args()
    curves = plan_curves(["jpeg"], [f"jpeg={args.qualities}"])
    make_task = functools.partial(create_task_from_options, "classification", OPTIONS)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for devices in (int(d) for d in args.devices.split(",")):
            out = Path(tmp) / f"d{devices}.json"
            start = time.perf_counter()
            if devices == 1:
                doc = evaluate(make_task(), curves, out, fidelity=("psnr-rgb",)).doc
            else:
                doc = evaluate_split(make_task, curves, out, None, None, devices, fidelity=("psnr-rgb",))
            seconds = time.perf_counter() - start
            coded = sum(len(e["per_image"]) for e in doc["entries"])
            print(f"devices {devices}: {coded} coded+judged images in {seconds:.1f} s = {coded / seconds:.2f} images/s")


if __name__ == "__main__":
    main()
