"""What fidelity metrics cost in an eval-task sweep, against the judge alone.

    .venv/bin/python benchmarks/bench_fidelity.py --dataset ../shared/data/imagenet-sample --classes 0/4

One process, one judge (EfficientNet-Lite0 with its real offline weights, built once), JPEG at
``--qualities`` on the labelled images of ``--dataset`` (``--classes I/N``: every N-th class).
Timed, interleaved and repeated (medians), after a warm-up sweep:

- the whole sweep (read, code through the container, decode, measure fidelity, judge, write the
  results file) with ``--fidelity psnr-rgb`` and with the default ``psnr-rgb,ms-ssim``;
- the judge alone on the same decoded images, grouped and batched as the sweep batches them
  (originals once, then every rate point): the sweep cannot be faster than this;
- one MS-SSIM of a 375x500 image, pytorch_msssim against mocodec's evaluation MS-SSIM.

The process keeps freed memory as the commands do (``--default-allocator``: glibc's default).
Goals: the default-fidelity sweep within 1.15x of the PSNR-only sweep, and the PSNR-only sweep at
>= 0.8x the judge-only throughput. Run it alone (speed figures).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore", category=FutureWarning)


def median_ms(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    from mocodec.evaluation.msssim import MSSSIMReference
    from mocodec.evaluation.plan import load_codecs, plan_curves
    from mocodec.evaluation.sweep import CodingStage, create_task_from_options, evaluate, judge_chunk
    from mocodec.losses.msssim import msssim
    from mocodec.utils.memory import keep_freed_memory

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/imagenet-sample"))
    parser.add_argument("--classes", default="0/4")
    parser.add_argument("--qualities", default="10,30,50,75")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument(
        "--default-allocator", action="store_true", help="leave glibc's allocator as it is (the commands keep freed memory)"
    )
    args = parser.parse_args()
    if not args.default_allocator:
        keep_freed_memory()  # as `mocodec eval-task` does

    task = create_task_from_options("classification", {"model": args.model, "pretrained": True})
    curves = plan_curves(["jpeg"], [args.qualities])
    options = {"classes": args.classes}
    samples = task.dataset(args.dataset, **options)
    fidelities = {"psnr-rgb": ("psnr-rgb",), "psnr-rgb,ms-ssim": ("psnr-rgb", "ms-ssim")}
    sweep_times: dict[str, list[float]] = {name: [] for name in fidelities}
    with tempfile.TemporaryDirectory() as tmp:
        evaluate(task, curves, Path(tmp) / "warm.json", args.dataset, options, fidelity=("psnr-rgb",), force=True)
        for _ in range(args.repeats):
            for name, fidelity in fidelities.items():
                start = time.perf_counter()
                evaluate(
                    task, curves, Path(tmp) / "r.json", args.dataset, options, fidelity=fidelity, force=True, chunk_size=args.chunk_size
                )
                sweep_times[name].append(time.perf_counter() - start)

    # The judge alone: the same decoded images, coded beforehand, judged in the sweep's chunks.
    codecs = load_codecs(curves)
    points = [p for c in curves for p in c.points]
    items = [CodingStage([(s, points)], codecs, ())[0] for s in samples]
    chunks = [items[i : i + args.chunk_size] for i in range(0, len(items), args.chunk_size)]
    judge_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for chunk in chunks:
            judge_chunk(task, chunk)
        judge_times.append(time.perf_counter() - start)

    x = items[0].x[None]
    x = torch.nn.functional.interpolate(x, size=(375, 500), mode="bilinear", align_corners=False).clamp(0, 1).mul(255).round().div(255)
    y = items[0].points[0][1].float().div(255)[None]
    y = torch.nn.functional.interpolate(y, size=(375, 500), mode="bilinear", align_corners=False).clamp(0, 1).mul(255).round().div(255)
    reference = MSSSIMReference(x)
    micro = {
        "pytorch_msssim": median_ms(lambda: msssim(y, x)),
        "mocodec, original's half included": median_ms(lambda: MSSSIMReference(x).score(y)),
        "mocodec, per decoded image (original's half reused)": median_ms(lambda: reference.score(y)),
    }

    judged = len(items) * (1 + len(points))  # originals once, then every rate point
    psnr, default, judge = (statistics.median(t) for t in (sweep_times["psnr-rgb"], sweep_times["psnr-rgb,ms-ssim"], judge_times))
    print(
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"{len(items)} images of {args.dataset.name} (classes {args.classes}), JPEG {args.qualities}, {args.model}, medians of {args.repeats}\n"
    )
    print("| run | wall (s) | judged images/s |")
    print("|---|---:|---:|")
    print(f"| sweep, --fidelity psnr-rgb | {psnr:.2f} | {judged / psnr:.1f} |")
    print(f"| sweep, --fidelity psnr-rgb,ms-ssim (default) | {default:.2f} | {judged / default:.1f} |")
    print(f"| judge alone (same images, same batches) | {judge:.2f} | {judged / judge:.1f} |")
    print(
        f"\ndefault / psnr-only: **{default / psnr:.3f}** (goal <= 1.15); psnr-only sweep / judge alone throughput: **{judge / psnr:.2f}** (goal >= 0.8)"
    )
    print("\n| MS-SSIM of one 375x500 image | ms |\n|---|---:|")
    for name, ms in micro.items():
        print(f"| {name} | {ms:.1f} |")


if __name__ == "__main__":
    main()
