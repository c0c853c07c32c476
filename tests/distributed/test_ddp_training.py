"""CodecModule under DDP (2 CPU processes, gloo) and bf16 autocast; the validation sampler's sharding."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mocodec import bitstream
from mocodec.codecs import load_codec
from mocodec.data.datamodule import ImageDataModule
from mocodec.training import CodecModule

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--model.codec_kwargs",
    '{"N": 8, "M": 12}',
    "--model.init_weights",
    "null",
    "--data.crop_size",
    "64",
    "--data.val_crop_size",
    "64",
    "--data.batch_size",
    "2",
    "--data.val_batch_size",
    "2",
    "--data.num_workers",
    "0",
    "--data.embedded_repeats",
    "1",
]
RANK_SCRIPT = """
import os, sys, torch
from mocodec.training import run_cli
cli = run_cli(sys.argv[2:])
torch.save(cli.model.codec.state_dict(), os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.pt"))
"""


@pytest.mark.slow
def test_two_process_ddp_run(tmp_path, photo_crop):
    """torchrun, 2 ranks of the DDP example config on CPU: finite losses, equal ranks, a checkpoint that codes."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(script),
        str(tmp_path),
        "fit",
        "--config",
        str(REPO / "configs/train/ddp_example.yaml"),
        *TINY,
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "2",
        "--trainer.precision",
        "bf16-mixed",
        "--trainer.max_steps",
        "3",
        "--trainer.limit_val_batches",
        "2",
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.logger",
        '{"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": "' + str(run) + '"}}',
        "--trainer.default_root_dir",
        str(run),
        "--trainer.enable_progress_bar",
        "false",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(next(run.rglob("metrics.csv")).open()))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert losses and all(math.isfinite(v) for v in losses)
    # DDP averaged every gradient, quantiles included: both ranks hold the same codec.
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    # The checkpoint loads in this single process and codes an image through the container.
    codec = load_codec("bmshj2018-hyperprior", 3, checkpoint=str(run / "checkpoints" / "last.ckpt"))
    x = photo_crop[0]
    x_hat, _ = bitstream.decode(codec, bitstream.encode(codec, x))
    assert x_hat.shape == x.shape and float((x_hat - x).abs().mean()) < 0.5


def test_entropy_models_stay_fp32_under_bf16_autocast(photo_crop):
    module = CodecModule(codec_kwargs={"N": 8, "M": 12})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(photo_crop[:, :, :64, :64])
        y = module.codec.g_a(photo_crop[:, :, :64, :64])
    assert y.dtype == torch.bfloat16  # the transforms do run in bf16
    assert {v.dtype for v in out["likelihoods"].values()} == {torch.float32}
    # The state dict is untouched by the fp32 wrapper, and deep copies keep it.
    assert set(module.codec.state_dict()) == set(CodecModule(codec_kwargs={"N": 8, "M": 12}).codec.state_dict())


class _Trainer:
    """What ImageDataModule asks of its trainer."""

    def __init__(self, world_size: int, global_rank: int):
        self.world_size, self.global_rank = world_size, global_rank


def test_validation_images_are_split_once_across_ranks():
    seen = []
    for rank in range(3):
        data = ImageDataModule(val_crop_size=32, val_batch_size=1)
        data.trainer = _Trainer(3, rank)
        data.setup("validate")
        seen.append(list(data.val_dataloader().sampler))
    everything = sorted(i for ids in seen for i in ids)
    assert everything == list(range(len(data.val_set)))  # each image exactly once, no padding repeats
