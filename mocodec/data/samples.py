"""One image of an evaluation dataset, as the dataset readers return it and the tasks judge it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One image of a task's dataset: a stable id (for resuming and merging), its file, its target.

    ``target`` is whatever the task's metrics need: a class index, a list of boxes, the
    questions asked about this image (VLM tasks group questions per image so that each
    image is coded once per rate), or None for label-free agreement only.
    """

    id: str
    path: Path
    target: Any = None
