"""PCMP build and IQA evaluation throughput on the embedded photographs, with real offline voters.

    .venv/bin/python benchmarks/bench_pcmp.py [--split val] [--max-size 256] [--threads 2]

Builds a PCMP dataset from scikit-image's photographs (default families: JPEG, WebP, AVIF,
blur, noise, resampling, contrast, hue shift, 5 levels each) labelled by EfficientNet-Lite0/1/2,
then scores it with PSNR, MS-SSIM and ML-FeatSim (EfficientNet-Lite0 features, real weights)
using Lite0+Lite1 as labelling voters and Lite2 as the held-out voter. Prints the timings and
the 2AFC table (figures on a handful of photographs: a smoke-scale measurement, not a result).
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
    parser.add_argument("--split", default="val", help="embedded photographs: val (6), train (11) or all")
    parser.add_argument("--max-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from mocodec.data.embedded import write_split
    from mocodec.iqa import load_iqa_dataset
    from mocodec.iqa.distortions import DEFAULT_FAMILIES, create_family
    from mocodec.iqa.evaluate import MetricSpec, evaluate_metrics
    from mocodec.iqa.pcmp import BuildSettings, build_pcmp
    from mocodec.iqa.report import markdown_section
    from mocodec.iqa.voting import create_voter

    work = Path(tempfile.mkdtemp(prefix="bench-pcmp-"))
    references = work / "photos"
    write_split(references, args.split)
    families = [create_family(f) for f in DEFAULT_FAMILIES]
    t0 = time.perf_counter()
    voters = [create_voter(f"efficientnet_lite{k}") for k in range(3)]
    t1 = time.perf_counter()
    summary = build_pcmp(references, work / "pcmp", families, voters, BuildSettings(max_size=args.max_size))
    t2 = time.perf_counter()
    dataset = load_iqa_dataset("pcmp", work / "pcmp", heldout_voters=["efficientnet-lite2"])
    metrics = [MetricSpec("mse", {}, "psnr"), MetricSpec("msssim", {}, "msssim"), MetricSpec("ml-featsim", {}, "ml-featsim")]
    (report,) = evaluate_metrics([dataset], metrics, n_resamples=args.resamples)
    t3 = time.perf_counter()

    n_ref, n_img = summary["references"], summary["images"]
    print(f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, {args.threads} threads")
    print(f"voters loaded: {t1 - t0:.1f} s")
    print(
        f"build: {n_ref} references, {n_img} distorted images, {summary['pairs']} pairs in {t2 - t1:.1f} s "
        f"({(t2 - t1) / n_ref:.2f} s per reference, {(t2 - t1) / n_img * 1000:.0f} ms per distorted image incl. 3 voters)"
    )
    print("pairs per tolerance: " + ", ".join(f"{t} dB: {n}" for t, n in summary["pairs_per_tolerance"].items()))
    print(f"voter agreement: {summary['voter_agreement']}; labels: {summary['labels']}")
    print(f"evaluation (3 metrics, {len(dataset)} pairs, {args.resamples} resamples): {t3 - t2:.1f} s")
    print(markdown_section(report))


if __name__ == "__main__":
    main()
