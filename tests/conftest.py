"""Shared fixtures: hermetic environment, tiny models, a few real photo crops.

The suite never touches the network or the home directory: hubs are offline, W&B is
offline, and matplotlib/ultralytics write their configs under a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="mocodec-tests-"))
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "YOLO_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "WANDB_DIR": str(_TMP / "wandb"),
    "MPLCONFIGDIR": str(_TMP / "mpl"),
    "YOLO_CONFIG_DIR": str(_TMP / "yolo"),
    "TORCH_HOME": str(_TMP / "torch"),  # an empty hub cache: pretrained loads must fail offline
    "HF_HOME": str(_TMP / "hf"),
    "MOCODEC_CACHE": str(_TMP / "cache"),  # embedded-photo tiles etc.
}.items():
    os.environ[key] = value
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO = Path(__file__).resolve().parents[1]
TINY = {"N": 8, "M": 12}  # channel widths of the tiny learned codecs


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


@pytest.fixture
def photo_crop(astronaut) -> torch.Tensor:
    """A 1 x 3 x 96 x 128 float crop of a real photograph (face region)."""
    crop = astronaut[40:136, 160:288]
    return torch.from_numpy(crop).permute(2, 0, 1).float().div(255).unsqueeze(0)


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the real ``mocodec`` console script in a subprocess."""
    exe = Path(sys.executable).parent / "mocodec"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mocodec"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=os.environ.copy())


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def session_cli():
    """``run_cli`` for module- and session-scoped fixtures."""
    return run_cli
