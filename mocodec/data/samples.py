"""One image of an evaluation dataset, as the dataset readers return it and the tasks judge it; a dataset's identity."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
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


DEFAULT_SET = "default"  # the name of a task's offline default set (no --dataset)


def dataset_identity(samples: Sequence[Sample], root: str | Path | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """Which dataset a result was measured on, the same from any machine and folder.

    ``name``: the folder's name (``default`` for a task's offline default set); ``num_samples``;
    ``digest``: the first 16 hex digits of a SHA-256 over every sample's id, the SHA-256 of its
    file and its target, in id order (so another copy of the same images and labels has the same
    digest, and any changed, added or relabelled image changes it); ``options``: the reader's.
    """
    digest = hashlib.sha256()
    for sample in sorted(samples, key=lambda s: s.id):
        with open(sample.path, "rb") as f:
            content = hashlib.file_digest(f, "sha256").hexdigest()
        digest.update(json.dumps([sample.id, content, sample.target], default=str).encode())
    name = Path(root).resolve().name if root is not None else DEFAULT_SET
    return {"name": name, "num_samples": len(samples), "digest": digest.hexdigest()[:16], "options": dict(options)}
