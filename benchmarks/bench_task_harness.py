"""Throughput of the eval-task sweep against its ingredients, measured in the same run.

    .venv/bin/python benchmarks/bench_task_harness.py [--model efficientnet_lite0] [--qualities 50] [--repeats 3]

On the embedded tiles (62 crops of 288 px), one run of the whole sweep loop (read, judge
the originals once, code through the container, decode, judge the decoded images, write
the results file) is timed against:

- classify-only: the same judge on the same images, the same batches, as many passes
  as the sweep makes (originals once + once per rate point), images decoded beforehand;
- the codec's own time: encode + decode as the sweep records it per image.

Harness overhead = sweep - classify-only - codec time; target <= 10 % of (classify + codec).
Runs alternate (sweep, classify, sweep, ...) so background load hits both; medians reported.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore", category=FutureWarning)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--codec", default="jpeg")
    parser.add_argument("--qualities", default="50")
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)

    from mocodec import bitstream
    from mocodec.data.io import read_image
    from mocodec.evaluation.coding import quantize_8bit
    from mocodec.evaluation.plan import load_codecs, plan_curves
    from mocodec.evaluation.results import Results, new_document
    from mocodec.evaluation.sweep import run_sweep, task_metrics
    from mocodec.tasks import create_task

    task = create_task("classification", model=args.model)
    samples = task.dataset(None)
    curves = plan_curves([args.codec], [args.qualities])
    codecs = load_codecs(curves)
    points = [p for c in curves for p in c.points]
    images = [read_image(s.path) for s in samples]
    originals = [x for x, _ in images]
    decoded = [[quantize_8bit(bitstream.decode(codecs[p], bitstream.encode(codecs[p], x, info))[0]) for x, info in images] for p in points]

    def classify_only() -> None:
        for batch in (originals, *decoded):
            for i in range(0, len(batch), args.chunk_size):
                task.log_probabilities(torch.stack(batch[i : i + args.chunk_size]))

    def whole_sweep() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            info = {"root": None, "options": {}, "num_samples": len(samples)}
            results = Results(new_document(task.identity(), info, ["psnr-rgb"], task_metrics(task)))
            run_sweep(task, samples, curves, results, Path(tmp) / "r.json", codecs=codecs, chunk_size=args.chunk_size)
        return sum(r["encoding_time"] + r["decoding_time"] for r in results.entries[0]["per_image"])

    classify_only(), whole_sweep()  # warm-up
    t_sweep, t_classify, t_codec = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        t_codec.append(whole_sweep())
        t_sweep.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        classify_only()
        t_classify.append(time.perf_counter() - t0)
    sweep, classify, codec = (statistics.median(t) for t in (t_sweep, t_classify, t_codec))
    n, passes = len(samples), 1 + len(points)
    overhead = sweep - classify - codec
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"judge {args.model}, codec {args.codec} q{args.qualities}, {n} images ({passes} judge passes each), median of {args.repeats}")
    print(f"whole sweep loop:   {sweep:7.2f} s  {n / sweep:7.2f} images/s")
    print(f"classify-only:      {classify:7.2f} s  {n / classify:7.2f} images/s")
    print(f"codec (enc + dec):  {codec:7.2f} s")
    print(f"harness overhead:   {overhead:7.2f} s  = {100 * overhead / (classify + codec):5.1f} % of classify + codec (target <= 10 %)")


if __name__ == "__main__":
    main()
