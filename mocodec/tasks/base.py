"""The downstream-task contract.

A task owns a frozen model, its preprocessing and its metrics. Evaluation is split in
two so that results shard and merge exactly (per-image records, no averages of averages):

- ``evaluate(original, decoded, targets)`` runs the model on a batch of original and
  decoded images (N x 3 x H x W in [0, 1]; ``targets`` a list of labels or Nones) and
  returns one JSON-serialisable record per image holding what the metrics need
  (e.g. correctness flags, a divergence, predicted boxes, an answer);
- ``summarize(records)`` turns any collection of records into the declared metrics
  (means for classification, mAP for detection, F1 for POPE, ...).

Every task reports *agreement*: how often the prediction on the decoded image equals
the prediction on the original (needs no labels), plus a soft measure. ``summarize``
returns it under the key ``"agreement"`` so figures of different tasks line up.

The model's outputs on an original image do not depend on the rate, so a sweep over
many rates asks for them once per image, through a split of ``evaluate`` in two:

- ``reference(original)`` runs the model on the originals and returns one object per
  image (e.g. a class distribution, a list of boxes, answers);
- ``compare(references, decoded, targets)`` produces the same records ``evaluate``
  would, from those cached objects and the decoded images.

Both have defaults (the reference is the original image itself and ``compare`` calls
``evaluate``), so a task that implements only ``evaluate`` works in every sweep and
simply recomputes its outputs on the originals at each rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mocodec.data.samples import Sample  # what :meth:`Task.dataset` returns; the dataset readers build them
from mocodec.evaluation.metrics import Metric

__all__ = ["Sample", "Task"]


class Task:
    """Base class of downstream evaluators; subclasses set ``name`` and declare their ``metrics``.

    ``metrics`` are :class:`~mocodec.evaluation.metrics.Metric` declarations (name, label,
    direction, measured on originals or compared, per-image mean or dataset-level), in
    display order: results files store them, and summaries, figures, BD tables and merges
    read them. ``summarize`` is a class method (a function of the records alone), so a merge
    summarises records without building the task's model.
    """

    name: str = "task"
    metrics: tuple[Metric, ...] = ()

    def identity(self) -> dict[str, Any]:
        """What determines this task's outputs (name, model, weights): JSON-serialisable.

        A sweep resumes a results file only if it was written under the same identity.
        """
        return {"name": self.name}

    def dataset(self, root: str | Path | None = None, **options: Any) -> list[Sample]:
        """The samples under ``root`` in the layouts this task reads; ``None``: its offline default."""
        raise NotImplementedError

    def evaluate(self, original: Tensor, decoded: Tensor, targets: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    @classmethod
    def summarize(cls, records: Sequence[dict[str, Any]]) -> dict[str, float | None]:
        """Each metric over ``records`` (any subset of a sweep's records: a point, a shard, one image)."""
        raise NotImplementedError

    def reference(self, original: Tensor) -> list[Any]:
        """Per-image outputs of the model on ``original`` (N x 3 x H x W), reused at every rate."""
        return list(original)

    def compare(self, references: Sequence[Any], decoded: Tensor, targets: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """The records of :meth:`evaluate`, from :meth:`reference` outputs instead of the originals."""
        return self.evaluate(torch.stack(list(references)), decoded, targets)

    def record_names(self, records: Sequence[dict[str, Any]]) -> dict[str, str]:
        """Names of the class indices ``records`` hold (``{"1": "goldfish"}``), for a page's captions; none by default.

        Records keep indices (small, and the same under any naming); a sweep that keeps decoded
        crops stores these names beside them, so ``mocodec report`` needs no model.
        """
        return {}
