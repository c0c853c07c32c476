"""Seconds per training step of the shipped codec's architecture under float32 and bf16 autocast, NCHW and NHWC.

    .venv/bin/python benchmarks/bench_precision.py [--steps 3 --threads 1 --crop 192 --batch 4]

Why: ``bf16-mixed`` is the fast path only where oneDNN has native bfloat16 kernels
(AVX512-BF16 or AMX); elsewhere PyTorch falls back to a generic bf16 convolution. This
prints the machine's capability and the step times that justify
:func:`mocodec.training.cli.effective_precision` (bf16-mixed -> 32-true on such CPUs).
A step: ``mbt2018-mean-small`` forward, MSE + rate loss, backward, Adam, on random crops
(the speed does not depend on the pixels). The minimum over ``--steps`` timed steps after
one warm-up step. Run it alone on an idle machine (about 1-2 minutes on a CPU without bf16).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from mocodec.codecs import create_codec
from mocodec.training.cli import cpu_has_native_bf16


def seconds_per_step(bf16: bool, channels_last: bool, steps: int, crop: int, batch: int) -> float:
    torch.manual_seed(0)
    codec = create_codec("mbt2018-mean-small", quality=1).train()
    x = torch.rand(batch, 3, crop, crop)
    if channels_last:
        codec, x = codec.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(codec.parameters(), 1e-4)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = codec(x)
        rate = sum(-likelihoods.float().log2().mean() for likelihoods in out["likelihoods"].values())
        loss = rate + 100 * (out["x_hat"].float() - x).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{platform.processor() or platform.machine()}; torch {torch.__version__}; CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}; native bf16: {cpu_has_native_bf16()}; {args.threads} thread(s); "
        f"batch {args.batch} x {args.crop}²; {time.strftime('%Y-%m-%d')}; load {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print("| precision | layout | s/step |\n|---|---|---:|")
    for bf16 in (False, True):
        for channels_last in (False, True):
            s = seconds_per_step(bf16, channels_last, args.steps, args.crop, args.batch)
            print(f"| {'bf16 autocast' if bf16 else 'float32'} | {'NHWC' if channels_last else 'NCHW'} | {s:.3f} |", flush=True)


if __name__ == "__main__":
    main()
