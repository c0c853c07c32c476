"""Cost of the ML-CLIPSim loss against the bare encoder it runs, same run.

    .venv/bin/python benchmarks/bench_ml_clipsim.py [--batch 8 --size 256 --repeats 5 --threads 2]

- loss: ``loss(x_hat, x).backward()`` on a batch of ``x_hat`` (requires grad) and ``x`` at
  size x size: preprocessing (antialiased resize to the encoder's input, normalisation), the
  reference features under no_grad, the distorted features with grad, cosines, backward.
- bare: the same frozen encoder, plain forward + backward on the distorted batch at the
  encoder's input size plus one no-grad forward on the reference batch (its ordinary
  ``forward``; preprocessing not timed).

Encoders: ML-CLIPSim on the ViT-B-32 architecture (random init: the OpenAI weights are not
reachable here; the cost does not depend on the values) and ml-featsim on EfficientNet-Lite0.
Times: interleaved loss/bare repeats after one warm-up, medians. Peak memory: each case runs
once in a fresh process, and the reported figure is the growth of the peak resident set over
its value after building the model and the inputs (Linux: freed heap returned with
``malloc_trim``, then the high-water mark ``VmHWM`` reset through ``/proc/self/clear_refs``);
on a GPU (``--device cuda``) it is ``torch.cuda.max_memory_allocated`` over the same baseline.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import logging
import multiprocessing as mp
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore")
logging.getLogger().setLevel(logging.ERROR)  # open_clip logs that the ViT-B-32 is randomly initialised

CASES = {
    "ml-clipsim ViT-B-32": ("ml-clipsim", {"model": "ViT-B-32", "pretrained": None}),
    "ml-featsim EfficientNet-Lite0": ("ml-featsim", {}),
}


def build(case: str, batch: int, size: int, device: str):
    """The loss, and the two closures to compare: one loss step and one bare-encoder step."""
    from mocodec.losses import create_distortion

    name, kwargs = CASES[case]
    loss = create_distortion(name, **kwargs).to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g).to(device)
    x_hat = (x + 0.05 * torch.randn(x.shape, generator=g).to(device)).clamp(0, 1).requires_grad_()
    with torch.no_grad():  # the encoder's own input: resized and normalised once, outside the timing
        x_in, _ = loss.encoder_inputs(x)
        y_in, _ = loss.encoder_inputs(x_hat)
    y_in.requires_grad_()
    network = loss.network.visual if hasattr(loss.network, "visual") else loss.network.network

    def loss_step() -> None:
        x_hat.grad = None
        loss(x_hat, x).backward()

    def bare_step() -> None:
        y_in.grad = None
        with torch.no_grad():
            network(x_in)
        network(y_in).float().sum().backward()

    return {"loss": loss_step, "bare": bare_step}


def resident_kib(field: str) -> int:
    """A ``/proc/self/status`` memory figure (VmRSS, VmHWM) in KiB."""
    line = next(row for row in Path("/proc/self/status").read_text().splitlines() if row.startswith(field + ":"))
    return int(line.split()[1])


def reset_peak_rss() -> int:
    """Return freed heap to the OS, reset the peak RSS to the current RSS, and return it (KiB)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return resident_kib("VmHWM")


def peak_growth_mb(case: str, which: str, batch: int, size: int, device: str, threads: int, queue) -> None:
    """In a fresh process: build, then one step; the growth of the peak memory in MB."""
    torch.set_num_threads(threads)
    step = build(case, batch, size, device)[which]
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        queue.put((torch.cuda.max_memory_allocated() - base) / 2**20)
    else:
        base = reset_peak_rss()
        step()
        queue.put((resident_kib("VmHWM") - base) / 1024)


def measure_memory(case: str, which: str, args) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=peak_growth_mb, args=(case, which, args.batch, args.size, args.device, args.threads, queue))
    proc.start()
    value = queue.get()
    proc.join()
    return value


def measure_time(case: str, args) -> dict[str, float]:
    steps = build(case, args.batch, args.size, args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.repeats):
        for which, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[which].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, device {args.device}")
    print(f"batch {args.batch} x 3 x {args.size} x {args.size}; forward + backward; median of {args.repeats}")
    print(f"{'case':32} {'loss s':>8} {'bare s':>8} {'ratio':>6} {'loss MB':>8} {'bare MB':>8} {'ratio':>6}")
    for case in args.cases:
        t = measure_time(case, args)
        mem = {which: measure_memory(case, which, args) for which in ("loss", "bare")}
        print(
            f"{case:32} {t['loss']:8.3f} {t['bare']:8.3f} {t['loss'] / t['bare']:6.3f} "
            f"{mem['loss']:8.0f} {mem['bare']:8.0f} {mem['loss'] / mem['bare']:6.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
