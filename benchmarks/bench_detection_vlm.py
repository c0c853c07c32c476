"""Seconds per image of the detection task and per question of the VLM task, on the held-out embedded photos.

    .venv/bin/python benchmarks/bench_detection_vlm.py [--repeats 3] [--threads 2]
    .venv/bin/python benchmarks/bench_detection_vlm.py --detector yolo11n --detector-weights yolo11n.pt \\
        --vlm OpenGVLab/InternVL3-1B-hf --device cuda        # real models, where their files are present

Defaults are the tiny random models the tests use (no download): yolo11n's architecture at
random init (2.6 M parameters) at the evaluation size 640 and at 320, and the tiny random
Qwen2.5-VL and InternVL of :mod:`mocodec.tasks.vlm_tiny` at batch 1 and 8. Timed as the
eval-task sweep calls the tasks: ``reference`` on the original, ``compare`` on a decoded
image (here: the original itself), one image at a time since the photographs differ in
size. Detection figures are per image and split in reference + compare; VLM figures are
per answered question (each question is answered on the original and on the decoded
image). Medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import torch

warnings.filterwarnings("ignore", category=FutureWarning)


def photos() -> list:
    from mocodec.data.embedded import photos as embedded

    return [torch.from_numpy(p).permute(2, 0, 1).float().div(255).unsqueeze(0) for p in embedded("val").values()]


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first calls build kernels, fuse layers, load processors
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_detection(model: str, weights: str | None, imgsz: int, device: str | None, repeats: int) -> None:
    from mocodec.tasks import create_task

    task = create_task("detection", model=model, weights=weights, pretrained=weights is not None, imgsz=imgsz, device=device)
    images = photos()
    t_ref = median_seconds(lambda: [task.reference(x) for x in images], repeats) / len(images)
    references = [task.reference(x) for x in images]
    t_cmp = median_seconds(lambda: [task.compare(r, x) for r, x in zip(references, images)], repeats) / len(images)
    label = f"{model}{' (random init)' if task.identity()['weights'] == 'random' else ''} @ {imgsz}px"
    print(f"detection  {label:<40} {t_ref + t_cmp:8.4f} s/image  (reference {t_ref:.4f} + compare {t_cmp:.4f})")


def bench_vlm(model: str, weights: str | None, batch_size: int, device: str | None, repeats: int) -> None:
    from mocodec.data.imagenet import cache_dir
    from mocodec.data.pope import embedded_pope_samples
    from mocodec.tasks import create_task

    task = create_task("vlm-qa", model=model, weights=weights, batch_size=batch_size, device=device)
    samples = embedded_pope_samples(cache_dir() / "embedded-val")
    images = photos()
    answered = 2 * sum(len(s.target) for s in samples)  # on the original and on the decoded image
    seconds = median_seconds(lambda: [task.evaluate(x, x, [s.target]) for x, s in zip(images, samples)], repeats)
    label = f"{model} (batch {batch_size}, {task.identity()['dtype']})"
    print(f"vlm-qa     {label:<40} {seconds / answered:8.4f} s/question  ({answered} answers per pass)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--detector", default="yolo11n", help="detector name (random init unless --detector-weights)")
    parser.add_argument("--detector-weights", default=None)
    parser.add_argument("--vlm", nargs="*", default=["random:qwen2.5-vl", "random:internvl"], help="VLM names or folders")
    parser.add_argument("--vlm-weights", default=None, help="snapshot folder for a single --vlm")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    where = (
        torch.cuda.get_device_name()
        if device.startswith("cuda")
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    print(f"machine: {where}, torch {torch.__version__}; 6 embedded photos (300 x 400 to 500 x 741), 14 POPE-style questions")
    for imgsz in (640, 320):
        bench_detection(args.detector, args.detector_weights, imgsz, device, args.repeats)
    for model in args.vlm:
        for batch_size in (1, 8):
            bench_vlm(model, args.vlm_weights, batch_size, device, args.repeats)


if __name__ == "__main__":
    main()
