"""Crash safety: atomic checkpoints, and a training run killed with SIGKILL resumes to the same weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mocodec.training import TRAINING_STATE_KEY, AtomicCheckpointIO
from mocodec.weights import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
# tiny_cpu.yaml shrunk: a tiny codec, 3 steps per epoch at batch 4, one validation batch,
# checkpoints after each validation (once per epoch), CSV logging only.
TINY = [
    "train",
    "fit",
    "--config",
    str(REPO / "configs" / "train" / "tiny_cpu.yaml"),
    "--model.codec_kwargs",
    "{{N: 8, M: 12}}",
    "--data.crop_size",
    "64",
    "--data.val_crop_size",
    "64",
    "--data.batch_size",
    "4",
    "--data.val_batch_size",
    "2",
    "--data.embedded_repeats",
    "1",
    "--trainer.limit_val_batches",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.logger",
    "CSVLogger",
    "--trainer.logger.save_dir",
    "{run}",
    "--trainer.max_epochs",
    "{epochs}",
    "--trainer.default_root_dir",
    "{run}",
]


def training_state(ckpt: dict) -> dict[str, torch.Tensor]:
    """Weights as training left them (checkpoints also hold coding-ready tables; see mocodec.training)."""
    return {**ckpt["state_dict"], **ckpt[TRAINING_STATE_KEY]}


def _command(run: Path, epochs: int, *extra: str) -> list[str]:
    exe = Path(sys.executable).parent / "mocodec"
    return [str(exe), *(a.format(run=run, epochs=epochs) for a in TINY), *extra]


def test_atomic_checkpoint_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # what a signal would do between writing and renaming

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "blob": torch.zeros(1000)}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    straight = subprocess.run(_command(tmp_path / "straight", 4), capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]

    run = tmp_path / "killed"
    last = run / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(_command(run, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not last.exists():  # kill once the first epoch's checkpoint is there
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(last)["global_step"]  # loadable: written atomically
    assert 3 <= killed_at < 12

    resumed = subprocess.run(_command(run, 4, "--ckpt_path", "last"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    b = load_checkpoint(last)
    assert a["global_step"] == b["global_step"] == 12
    sa, sb = training_state(a), training_state(b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_from_a_checkpoint_with_pickled_code_is_refused(tmp_path, cli):
    evil = tmp_path / "evil.ckpt"
    torch.save({"payload": AtomicCheckpointIO()}, evil)  # any non-allow-listed class is code
    res = cli(*_command(tmp_path / "run", 1, "--ckpt_path", str(evil))[1:])
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        f"mocodec: error: checkpoint {evil} contains pickled code, which mocodec refuses to execute; "
        "re-save it as a plain state dict (torch.save(model.state_dict(), ...))"
    )
    assert not (tmp_path / "run").exists()
