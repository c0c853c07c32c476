"""Stop training at a wall-clock deadline, resumable (``mocodec train fit --stop_at.deadline EPOCH_SECONDS``).

Lightning's ``max_time`` is a budget of training time that its timer carries across resumes
(counted in the checkpoint), which suits one long job but not "train until the machine is taken
back": a run resumed in a later stretch would stop at once, its budget spent. A deadline is a
point in time, the same in every process of the stretch (``mocodec experiment --minutes``).
Training stops after the step that crosses it; ``last.ckpt`` is then written at that step
(:class:`~mocodec.training.checkpoints.LastStepCheckpoint`), so the next stretch resumes there.
"""

from __future__ import annotations

import time
from typing import Any

from pytorch_lightning.callbacks import Callback


class StopAtDeadline(Callback):
    """Ask the trainer to stop once ``time.time()`` passes ``deadline`` (seconds since the epoch); None: never."""

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if self.deadline is not None and time.time() >= self.deadline:
            trainer.should_stop = True


__all__ = ["StopAtDeadline"]
