"""Where a training run keeps its files: light to import (no Lightning, no CompressAI).

Reading results and drawing reports find runs' checkpoints by this layout without loading the trainer.
"""

from __future__ import annotations

import os
from pathlib import Path


def checkpoint_dir(run_dir: str | os.PathLike | None) -> Path:
    """Where ``mocodec train`` writes the checkpoints of the run in ``run_dir``."""
    return Path(run_dir or ".") / "checkpoints"


__all__ = ["checkpoint_dir"]
