"""The downstream-task contract.

A task owns a frozen model, its preprocessing and its metrics. Evaluation is split in
two so that results shard and merge exactly (per-image records, no averages of averages):

- ``evaluate(original, decoded, targets)`` runs the model on a batch of original and
  decoded images (N x 3 x H x W in [0, 1]; ``targets`` a list of labels or Nones) and
  returns one JSON-serialisable record per image holding what the metrics need
  (e.g. correctness flags, a divergence, predicted boxes, an answer);
- ``summarize(records)`` turns any collection of records into dataset-level metrics
  (means for classification, mAP for detection, F1 for POPE, ...).

Every task reports *agreement*: how often the prediction on the decoded image equals
the prediction on the original (needs no labels), plus a soft measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from torch import Tensor


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


class Task:
    """Base class of downstream evaluators; subclasses set ``name`` and ``metrics``."""

    name: str = "task"
    metrics: tuple[str, ...] = ()  # the keys ``summarize`` returns, in display order
    higher_is_better: dict[str, bool] = {}

    def dataset(self, root: str | Path | None = None, **options: Any) -> list[Sample]:
        """The samples under ``root`` in the layouts this task reads; ``None``: its offline default."""
        raise NotImplementedError

    def evaluate(self, original: Tensor, decoded: Tensor, targets: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def summarize(self, records: Sequence[dict[str, Any]]) -> dict[str, float]:
        raise NotImplementedError
