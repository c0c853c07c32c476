"""The GPU path, measured in one short run: sweep images/s on the device vs this CPU, training steps/s, DDP with NCCL.

Run it whenever a GPU machine is lent (it needs mocodec and its dependencies installed there,
e.g. from wheels carried with the working tree), well inside 8 minutes:

    python benchmarks/gpu_check.py --out gpu_check.md            # on the GPU machine
    python benchmarks/gpu_check.py --cpu-only --out cpu_check.md  # the same steps at test size, CPU only (slow suite)

It writes one Markdown file of figures (machine, versions, date, each step's command and
result) and exits non-zero if a step failed; the file says which. Steps:

1. **sweep**: the 62 embedded 288 px tiles coded by JPEG (4 qualities) and a hyperprior (2
   qualities) and judged by EfficientNet-Lite0 (real offline weights), (a) all on the CPU, as
   today, (b) the judge and the hyperprior's transforms on the GPU, the entropy coding on the
   CPU, with the judge in fp32 and in bf16; plus the two stages alone -- the judge's images/s on
   the device and the CPU coding stage's images/s with every core -- so the sweep's images/s can
   be compared with the slower of the two (the goal: >= 0.8 of it);
2. **training**: steps/s of the fast training config on the GPU under bf16-mixed, batch 16 of
   256 px crops of the embedded photographs;
3. **ddp**: `torchrun --nproc-per-node N` of configs/train/ddp_example.yaml on the GPUs (NCCL),
   a few steps, to show the DDP path runs;
4. **portability**: files of the shipped codec written with the transforms on the CPU and decoded
   with them on the GPU, and the other way round, in each arithmetic: files refused, how many of
   those the entropy decoder would have decoded to other symbols (the latent check, recomputed),
   and the largest pixel difference of a decoded file from the writer's own decode
   (``--cpu-only``: 1 thread against 2).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def sweep_step(device: str, cpu_only: bool) -> list[str]:
    from torch.utils.data import DataLoader

    from mocodec.evaluation.plan import load_codecs, plan_curves
    from mocodec.evaluation.shards import Shard
    from mocodec.evaluation.sweep import CodingStage, create_task_from_options, evaluate

    options = {"model": "test_efficientnet", "pretrained": False} if cpu_only else {"model": "efficientnet_lite0"}
    curves = plan_curves(["jpeg", "hp=bmshj2018-hyperprior"], ["jpeg=10,30,50,75", "hp=1,3"])
    dataset_options = {"tile": 96, "stride": 192} if cpu_only else {}
    cores = os.cpu_count() or 1
    lines = ["| run | images | wall (s) | images/s |", "|---|---:|---:|---:|"]
    runs = [("all on the CPU (today)", "cpu", "cpu", False, 0)]
    if device != "cpu":
        runs += [
            (f"judge + transforms on {device}, fp32, {cores - 1} coding workers", device, device, False, 0),
            (f"judge + transforms on {device}, bf16 judge", device, device, True, 0),
        ]
    runs.append((f"all on the CPU, {min(2, cores)} coding workers", "cpu", "cpu", False, min(2, cores)))
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: imports, the embedded tiles, model builds; the timed runs start warm
        evaluate(
            create_task_from_options("classification", options),
            curves,
            Path(tmp) / "warm.json",
            None,
            dataset_options,
            fidelity=("psnr-rgb",),
            shard=Shard(0, 31),
        )
        for label, judge_device, codec_device, bf16, workers in runs:
            task = create_task_from_options("classification", {**options, "device": judge_device, "bf16": bf16})
            start = time.perf_counter()
            doc = evaluate(
                task,
                curves,
                Path(tmp) / f"{len(lines)}.json",
                None,
                dataset_options,
                codec_device=codec_device,
                workers=workers,
                fidelity=("psnr-rgb",),
            ).doc
            seconds = time.perf_counter() - start
            coded = sum(len(e["per_image"]) for e in doc["entries"])
            lines.append(f"| {label} | {coded} | {seconds:.1f} | {coded / seconds:.2f} |")
        # The two stages alone: the judge on its device, the CPU coding stage with every core.
        task = create_task_from_options("classification", {**options, "device": device})
        samples = task.dataset(None, **dataset_options)
        images = torch.rand(len(samples), 3, 288 if not cpu_only else 96, 288 if not cpu_only else 96)
        task.log_probabilities(images[:4])  # warm-up
        start = time.perf_counter()
        task.log_probabilities(images)
        judge = len(samples) / (time.perf_counter() - start)
        codecs = load_codecs(curves)
        points = [p for c in curves for p in c.points]
        stage = CodingStage([(s, points) for s in samples], codecs, ("psnr-rgb",))
        start = time.perf_counter()
        for _ in DataLoader(stage, batch_size=None, num_workers=max(1, cores - 1), collate_fn=lambda item: item):
            pass
        coding = len(samples) * len(points) / (time.perf_counter() - start)
    lines += [
        "",
        f"- the judge alone on {device}: {judge:.1f} images/s (one image per original; the sweep judges each at "
        f"{len(points)} points plus the original)",
        f"- the CPU coding stage alone, {max(1, cores - 1)} workers: {coding:.1f} coded images/s",
    ]
    return lines


def training_step(device: str, cpu_only: bool, out: Path) -> list[str]:
    from mocodec.training import run_cli

    steps = 4 if cpu_only else 200
    args = [
        "fit",
        "--config",
        str(REPO / "configs" / "train" / "tiny_cpu.yaml"),
        "--trainer.default_root_dir",
        str(out),
        "--trainer.max_steps",
        str(steps),
        "--trainer.max_epochs",
        "-1",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.logger",
        "false",
        "--trainer.accelerator",
        "cpu" if device == "cpu" else "gpu",
        "--trainer.precision",
        "bf16-mixed",
        "--data.batch_size",
        "2" if cpu_only else "16",
        "--data.crop_size",
        "64" if cpu_only else "256",
    ]
    start = time.perf_counter()
    cli = run_cli(args)
    seconds = time.perf_counter() - start
    done = cli.trainer.global_step
    return [f"- `mocodec train {' '.join(args)}`", f"- {done} steps in {seconds:.1f} s (start-up included): {done / seconds:.2f} steps/s"]


def ddp_step(device: str, cpu_only: bool, out: Path) -> list[str]:
    gpus = torch.cuda.device_count() if device != "cpu" else 2
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={gpus}",
        str(REPO / "train.py"),
        "fit",
        "--config",
        str(REPO / "configs" / "train" / "ddp_example.yaml"),
        "--trainer.default_root_dir",
        str(out),
        "--trainer.devices",
        str(gpus),
        "--trainer.max_steps",
        "4",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.logger",
        "false",
        "--model.codec_kwargs",
        "{N: 16, M: 24}" if cpu_only else "{N: 128, M: 192}",
        "--data.num_workers",
        "0",
        "--data.crop_size",
        "64" if cpu_only else "256",
    ]
    if device == "cpu":
        cmd += ["--trainer.accelerator", "cpu", "--trainer.precision", "32-true"]
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"torchrun exited with {run.returncode}: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else ''}")
    backend = "nccl" if device != "cpu" else "gloo"
    return [f"- `{' '.join(cmd[1:])}`", f"- {gpus} process(es), {backend}, 4 steps: finished in {seconds:.1f} s (start-up included)"]


def portability_step(device: str, cpu_only: bool) -> list[str]:
    import skimage.data

    from mocodec import bitstream
    from mocodec.codecs import load_codec
    from mocodec.errors import BitstreamError

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    side = 128 if cpu_only else 512
    images = [torch.from_numpy(p[:side, :side].copy()).permute(2, 0, 1).float().div(255) for p in photos]
    other = device if device != "cpu" else "cpu"
    lines = [
        "| arithmetic | encode on | decode on | files | refused | of them, symbols differ | max pixel diff (of 255) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    threads = torch.get_num_threads()
    for arithmetic in ("exact", "float"):
        for source, target in ((("cpu", threads), (other, 1)), ((other, 1), ("cpu", threads))):
            codecs = {}
            for place, n in (source, target):
                codecs[(place, n)] = load_codec("mbt2018-mean-small", 4, pretrained=True, arithmetic=arithmetic).to(place)
            refused = differ = 0
            largest = 0.0
            for x in images:
                torch.set_num_threads(source[1])
                data = bitstream.encode(codecs[source], x)
                written, _ = bitstream.decode(codecs[source], data)
                torch.set_num_threads(target[1])
                bs = bitstream.unpack(data)
                try:
                    decoded, _ = bitstream.decode(codecs[target], data)
                except BitstreamError:
                    refused += 1
                    with bitstream.coding_arithmetic(codecs[target], bs):
                        check = codecs[target].decompress([[s] for s in bs.strings], (bs.height, bs.width))["check"][0]
                    differ += check != bs.check
                    continue
                largest = max(largest, (decoded - written).abs().max().item() * 255)
            torch.set_num_threads(threads)
            lines.append(
                f"| {arithmetic} | {source[0]} ({source[1]} threads) | {target[0]} ({target[1]} threads) | {len(images)} | "
                f"{refused} | {differ} | {largest:.2f} |"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.md"))
    parser.add_argument("--cpu-only", action="store_true", help="run every step on the CPU at test size (no GPU needed)")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")
    device = "cpu" if args.cpu_only or not torch.cuda.is_available() else "cuda"
    name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine()
    report = [
        f"# GPU check ({'CPU only, test size' if args.cpu_only else device})",
        "",
        f"- machine: {name}, {os.cpu_count()} CPU cores; torch {torch.__version__}; "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
    ]
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for title, step in (
            ("sweep", lambda: sweep_step(device, args.cpu_only)),
            ("training", lambda: training_step(device, args.cpu_only, Path(tmp) / "train")),
            ("ddp", lambda: ddp_step(device, args.cpu_only, Path(tmp) / "ddp")),
            ("portability", lambda: portability_step(device, args.cpu_only)),
        ):
            report += [f"## {title}", ""]
            try:
                report += step()
            except Exception as exc:  # a failed step is reported, and the others still run
                failed.append(title)
                report += [f"FAILED: {type(exc).__name__}: {exc}", "", "```", traceback.format_exc(limit=4), "```"]
            report.append("")
            args.out.write_text("\n".join(report) + "\n")  # after every step: a killed run keeps what it measured
    print(args.out.read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
