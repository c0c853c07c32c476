"""Training speed on a CPU: ``tiny_cpu.yaml`` (fp32, an image file decoded per sample) against
``fast_cpu.yaml`` (bf16-mixed, channels-last, decoded crops in memory), on the same crops, in one process.

    .venv/bin/python benchmarks/bench_training_speed.py [--train ../shared/data/photos ../shared/data/imagenet-sample]
        [--classes 0/2] [--kodak ../shared/data/kodak] [--steps 300 --warmup 20] [--loss-steps 500 --seeds 0 1]
        [--minutes 10] [--parts speed loss kodak threads]

Both pipelines are the shipped configs, resolved as ``mocodec train fit --config`` resolves them,
with ``--data.train`` set to the training sources (``--classes I/N`` keeps those class folders of
each ``--train`` folder that has class sub-folders; the others are taken whole), no validation
and no logger. Nothing else differs: same codec, λ, crops (128²), batch (8), optimisers, seed.

- ``speed``: steps/s (wall clock) and CPU-seconds per step of the training process, over
  ``--steps`` steps after ``--warmup`` (data loading included: the window runs from the end
  of one step to the end of another);
- ``loss``: each pipeline trains ``--loss-steps`` steps from each of ``--seeds``; the mean
  training loss over the last 20 % of the steps per run, the pipelines' difference and the
  seeds' spread, so "the same loss per step within seed noise" can be checked (with the
  same loader settings both pipelines draw the very same crops);
- ``kodak``: each pipeline trains for ``--minutes`` of wall-clock time (the cache's decoding
  counted, checkpoint writing not) with a checkpoint every fifth of it; each checkpoint is
  coded through the real container on ``--kodak`` (:func:`mocodec.evaluation.sweep.evaluate`):
  file bpp and PSNR against the minutes trained;
- ``threads``: fast_cpu's steps/s for torch intra-op threads x loader workers (1-2 x 0-1).

Prints the machine, torch and Lightning versions, threads, date and load average, then
Markdown tables ready for ``benchmarks/results/training.md``. Run it alone on an idle
machine (about 45 minutes with the defaults). A smoke run that measures nothing:
``--steps 3 --warmup 1 --loss-steps 5 --minutes 0.2 --kodak-images 2``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from mocodec.data.datamodule import ImageDataModule
from mocodec.data.datasets import TrainingSource
from mocodec.evaluation.plan import plan_curves
from mocodec.evaluation.sweep import FidelityOnly, evaluate
from mocodec.training import CodecModule, MocodecCLI

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # ../shared/data beside the repository
PIPELINES = {name: REPO / "configs" / "train" / f"{name}.yaml" for name in ("tiny_cpu", "fast_cpu")}
TAIL = 0.2  # the share of a run's last steps whose mean loss is compared


# --------------------------------------------------------------------------- one training run


class StepClock(pl.Callback):
    """Each step's training loss; wall and CPU time from the end of step ``start`` to the end of step ``stop``."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop
        self.losses: list[float] = []
        self.window: tuple[float, float] | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.losses.append(float(trainer.callback_metrics["train/loss"]))
        if trainer.global_step == self.start:
            self._began = (time.perf_counter(), time.process_time())
        if trainer.global_step == self.stop:
            self.window = (time.perf_counter() - self._began[0], time.process_time() - self._began[1])
            trainer.should_stop = True


class WallClockCheckpoints(pl.Callback):
    """A checkpoint after each ``every`` seconds of training (from ``began``; time spent writing checkpoints
    not counted), ``count`` of them, then stop. ``saved``: (minutes, step, path) per checkpoint."""

    def __init__(self, began: float, every: float, count: int, folder: Path) -> None:
        self.began, self.every, self.count, self.folder = began, every, count, folder
        self.paused = 0.0
        self.saved: list[tuple[float, int, Path]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        elapsed = time.perf_counter() - self.began - self.paused
        if elapsed < self.every * (len(self.saved) + 1):
            return
        writing = time.perf_counter()
        path = self.folder / f"{len(self.saved) + 1}.ckpt"
        trainer.save_checkpoint(path)
        self.paused += time.perf_counter() - writing
        self.saved.append((elapsed / 60, trainer.global_step, path))
        if len(self.saved) == self.count:
            trainer.should_stop = True


def training_run(pipeline: str, train: list[Any], seed: int, run_dir: Path, callback: pl.Callback, extra: Sequence[str] = ()) -> None:
    """Fit ``pipeline``'s config (then ``extra`` command-line keys) on ``train`` from ``seed`` until ``callback`` stops it."""
    cli = MocodecCLI(
        CodecModule,
        ImageDataModule,
        run=False,
        save_config_callback=None,
        trainer_defaults={"callbacks": [callback]},
        args=[
            "--config",
            str(PIPELINES[pipeline]),
            "--data.train",
            json.dumps(train),
            "--seed_everything",
            str(seed),
            "--trainer.default_root_dir",
            str(run_dir),
            "--trainer.logger",
            "false",
            "--trainer.max_epochs",
            "-1",
            "--trainer.limit_val_batches",
            "0",
            "--trainer.num_sanity_val_steps",
            "0",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
            *extra,
        ],
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


# --------------------------------------------------------------------------- the parts


def part_speed(args: argparse.Namespace, train: list[Any], work: Path) -> str:
    rows = []
    for pipeline in PIPELINES:
        clock = StepClock(args.warmup, args.warmup + args.steps)
        training_run(pipeline, train, 0, work / pipeline, clock)
        wall, cpu = clock.window
        rows.append((pipeline, args.steps / wall, cpu / args.steps, wall / args.steps))
    base = rows[0][3]
    lines = [
        f"(a) speed: {args.steps} steps after {args.warmup} warm-up steps, data loading included",
        "",
        "| pipeline | steps/s (wall) | s per step | CPU-s per step (training process) | speed-up |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {rate:.2f} | {per_step:.3f} | {cpu:.3f} | x{base / per_step:.2f} |" for name, rate, cpu, per_step in rows]
    return "\n".join(lines)


def part_loss(args: argparse.Namespace, train: list[Any], work: Path) -> str:
    tail = max(1, round(args.loss_steps * TAIL))
    means: dict[str, list[float]] = {}
    for seed in args.seeds:
        for pipeline in PIPELINES:
            clock = StepClock(args.loss_steps, args.loss_steps)  # only stops the run
            training_run(pipeline, train, seed, work / f"{pipeline}-loss-{seed}", clock)
            means.setdefault(pipeline, []).append(statistics.fmean(clock.losses[-tail:]))
    lines = [
        f"(b) loss: mean training loss over the last {tail} of {args.loss_steps} steps, per seed",
        "",
        f"| pipeline | {' | '.join(f'seed {s}' for s in args.seeds)} | mean | seed spread (max - min) |",
        "|---|" + "---|" * (len(args.seeds) + 2),
    ]
    for pipeline, values in means.items():
        lines.append(
            f"| {pipeline} | {' | '.join(f'{v:.4f}' for v in values)} | {statistics.fmean(values):.4f} | {max(values) - min(values):.4f} |"
        )
    tiny, fast = means["tiny_cpu"], means["fast_cpu"]
    differences = [f - t for t, f in zip(tiny, fast)]
    spread = max(max(v) - min(v) for v in means.values())
    lines += [
        "",
        f"fast_cpu - tiny_cpu, per seed: {', '.join(f'{d:+.4f}' for d in differences)} "
        f"(mean {statistics.fmean(differences):+.4f}); largest seed-to-seed spread {spread:.4f}",
    ]
    return "\n".join(lines)


def part_kodak(args: argparse.Namespace, train: list[Any], work: Path) -> str:
    kodak = Path(args.kodak)
    if args.kodak_images:  # a smoke run: the first images only
        subset = work / "kodak-subset"
        subset.mkdir(parents=True)
        for path in sorted(kodak.glob("*.png"))[: args.kodak_images]:
            (subset / path.name).symlink_to(path.resolve())
        kodak = subset
    points: dict[str, list[tuple[float, int, float, float]]] = {}
    for pipeline in PIPELINES:
        folder = work / pipeline
        folder.mkdir(parents=True)
        saver = WallClockCheckpoints(time.perf_counter(), args.minutes * 60 / 5, 5, folder)
        training_run(pipeline, train, 0, folder, saver)
        curves = plan_curves([f"{pipeline}-{i}=ckpt:{path}" for i, (_, _, path) in enumerate(saver.saved)])
        results = evaluate(FidelityOnly(), curves, folder / "kodak.json", kodak, fidelity=("psnr-rgb",))
        by_label = {e["name"]: e["results"] for e in results.entries}
        points[pipeline] = [
            (minutes, step, by_label[f"{pipeline}-{i}"]["bpp"][0], by_label[f"{pipeline}-{i}"]["psnr-rgb"][0])
            for i, (minutes, step, _) in enumerate(saver.saved)
        ]
    lines = [
        f"(c) Kodak ({len(list(kodak.glob('*.png')))} images, file bpp and PSNR of the decoded files) against wall-clock minutes of training",
        "",
        "| minutes | tiny_cpu: steps | bpp | PSNR (dB) | fast_cpu: steps | bpp | PSNR (dB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (m, s1, b1, p1), (_, s2, b2, p2) in zip(points["tiny_cpu"], points["fast_cpu"]):
        lines.append(f"| {m:.1f} | {s1} | {b1:.3f} | {p1:.2f} | {s2} | {b2:.3f} | {p2:.2f} |")
    return "\n".join(lines)


def part_threads(args: argparse.Namespace, train: list[Any], work: Path) -> str:
    lines = [
        f"(d) fast_cpu, {args.steps} steps after {args.warmup}: torch intra-op threads x loader workers "
        "(CPU time: the training process only)",
        "",
        "| threads | loader workers | steps/s (wall) | CPU-s per step |",
        "|---|---|---|---|",
    ]
    threads_before = torch.get_num_threads()
    for threads, workers in ((2, 0), (1, 0), (1, 1), (2, 1)):
        torch.set_num_threads(threads)
        clock = StepClock(args.warmup, args.warmup + args.steps)
        try:
            training_run("fast_cpu", train, 0, work / f"threads-{threads}-workers-{workers}", clock, ["--data.num_workers", str(workers)])
        finally:
            torch.set_num_threads(threads_before)
        wall, cpu = clock.window
        lines.append(f"| {threads} | {workers} | {args.steps / wall:.2f} | {cpu / args.steps:.3f} |")
    return "\n".join(lines)


PARTS = {"speed": part_speed, "loss": part_loss, "kodak": part_kodak, "threads": part_threads}


# --------------------------------------------------------------------------- main


def training_sources(folders: Sequence[str], classes: str | None) -> list[Any]:
    """``--train`` folders as ``data.train`` items: ``classes`` of those with class sub-folders, the others whole."""
    items: list[Any] = []
    for folder in folders:
        has_classes = any(p.is_dir() for p in Path(folder).iterdir())
        items.append({"root": folder, "classes": classes} if classes and has_classes else folder)
    return items


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")), cpu)
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} intra-op threads), "
        f"pytorch-lightning {pl.__version__}, load average {os.getloadavg()[0]:.1f}, {datetime.date.today().isoformat()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--train", nargs="+", default=[str(SHARED_DATA / "photos"), str(SHARED_DATA / "imagenet-sample")], help="training folders"
    )
    parser.add_argument("--classes", default="0/2", help="I/N: the class folders kept of --train folders that have class sub-folders")
    parser.add_argument("--kodak", default=str(SHARED_DATA / "kodak"), help="Kodak images (part kodak)")
    parser.add_argument("--kodak-images", type=int, default=0, help="code only the first N Kodak images (smoke runs); 0: all")
    parser.add_argument("--steps", type=int, default=300, help="timed steps (parts speed and threads)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps before them")
    parser.add_argument("--loss-steps", type=int, default=500, help="steps per run of part loss")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of part loss")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock minutes of training per pipeline (part kodak)")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--work", default=None, help="folder for runs and checkpoints (default: a temporary one, deleted)")
    args = parser.parse_args()
    needed = [*args.train, *([args.kodak] if "kodak" in args.parts else [])]
    missing = [p for p in needed if not Path(p).is_dir()]
    if missing:
        sys.exit(
            f"bench_training_speed: {missing[0]} is missing: this benchmark needs ../shared/data (photos, imagenet-sample, kodak) "
            "beside the repository, or --train / --kodak folders"
        )
    train = training_sources(args.train, args.classes)
    for item in train:
        TrainingSource.of(item).class_shard()  # a bad --classes is one line before anything runs
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning_fabric").setLevel(logging.WARNING)

    print(f"machine: {machine()}")
    print(f"training data: {json.dumps(train)}")
    with tempfile.TemporaryDirectory(prefix="bench-training-speed-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.parts:
            start = time.perf_counter()
            table = PARTS[name](args, train, work / name)
            print(f"\n{table}\n\n({name}: {(time.perf_counter() - start) / 60:.1f} min)", flush=True)


if __name__ == "__main__":
    main()
