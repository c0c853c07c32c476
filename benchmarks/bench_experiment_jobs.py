"""``mocodec experiment --jobs``: wall time of a set of training runs one after the other
(one process, every thread) against ``--jobs 2`` (two worker processes, one thread each).

    .venv/bin/python benchmarks/bench_experiment_jobs.py [--steps 60 --jobs 2]

The runs are offline_small's own (bmshj2018-hyperprior N=48/M=64, batch 8 of 128 px
crops), seed 0, two λ per term, without the base, ``--steps`` steps each: MSE, MSE +
ml-featsim (EfficientNet-Lite0) and MS-SSIM, i.e. 6 runs of uneven cost. Each setting
trains into a fresh folder through :func:`mocodec.experiment.runs.train_runs`, start-up,
validation and checkpoints included, so the ratio is what a user of the command gets.
Run it on an idle machine: with other jobs on the cores, neither figure means much.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import torch
import yaml

from mocodec.experiment import Recipe, compared_runs, parse_recipe, train_runs

warnings.filterwarnings("ignore")
RECIPE = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "offline_small.yaml"


def recipe(steps: int) -> Recipe:
    """offline_small's runs of seed 0 at two λ per term, without the base, ``steps`` steps each."""
    data = yaml.safe_load(RECIPE.read_text())
    data.update(seeds=[0], steps=steps, checkpoints=1, wandb=False)
    del data["codecs"]["hyperprior"]["pretrain"]
    for term in data["terms"].values():
        term["lmbdas"] = term["lmbdas"][:2]
    data["training"]["trainer"]["enable_progress_bar"] = False
    return parse_recipe(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    plan = recipe(args.steps)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {len(compared_runs(plan))} runs x {args.steps} steps"
    )
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, args.jobs):
            start = time.perf_counter()
            done = train_runs(compared_runs(plan), plan, Path(tmp) / f"jobs{jobs}", log=lambda _: None, jobs=jobs)
            times[jobs] = time.perf_counter() - start
            runs = ", ".join(f"{name.split('_')[1]} {d['wall_time']:.0f} s" for name, d in done.items())
            print(f"--jobs {jobs}: {times[jobs]:.1f} s wall ({runs})", flush=True)
    print(f"speed-up of --jobs {args.jobs}: x{times[1] / times[args.jobs]:.2f}")


if __name__ == "__main__":
    main()
