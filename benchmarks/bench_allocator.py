"""What keeping freed memory in the process (mocodec.utils.memory) is worth: training steps and page faults.

    .venv/bin/python benchmarks/bench_allocator.py [--rounds 4] [--steps 15]

Each measurement is a fresh process (one torch thread) timing ``--steps`` training steps of
mbt2018-mean-small at the recipes' batch (4 x 192² crops, channels-last, Adam, MSE + rate) after
three untimed ones, with glibc's default allocator behaviour or with :func:`keep_freed_memory`;
the two alternate for ``--rounds`` rounds (the medians are reported). Run it alone.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import subprocess
import sys

STEPS = """
import resource, sys, time, torch
from mocodec.utils.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
from mocodec.training import CodecModule
from mocodec.training.module import split_parameters
module = CodecModule("mbt2018-mean-small", 2, lmbda=0.005)
codec = module.codec.train().to(memory_format=torch.channels_last)
optimizer = torch.optim.Adam(split_parameters(codec)[0], lr=1e-4)
x = torch.rand(4, 3, 192, 192).contiguous(memory_format=torch.channels_last)
def step():
    loss = module.loss(codec(x), x)["loss"] + codec.aux_loss()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
for _ in range(3):
    step()
faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
for _ in range(int(sys.argv[2])):
    step()
print((time.perf_counter() - start) / int(sys.argv[2]), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / int(sys.argv[2]))
"""


def measure(mode: str, steps: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", STEPS, mode, str(steps)], capture_output=True, text=True, check=True)
    seconds, faults = out.stdout.split()
    return float(seconds), float(faults)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"default": [], "keep": []}
    for _ in range(args.rounds):
        for mode in results:
            results[mode].append(measure(mode, args.steps))
    print(f"{datetime.date.today()} {platform.processor() or platform.machine()}, {args.rounds} rounds x {args.steps} steps")
    print("| allocator | s/step (median) | steps/s | page faults/step |")
    print("|---|---|---|---|")
    for mode, label in (("default", "glibc default"), ("keep", "keep_freed_memory()")):
        seconds = statistics.median(s for s, _ in results[mode])
        faults = statistics.median(f for _, f in results[mode])
        print(f"| {label} | {seconds:.3f} | {1 / seconds:.2f} | {faults:,.0f} |")


if __name__ == "__main__":
    main()
