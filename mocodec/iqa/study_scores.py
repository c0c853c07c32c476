"""The PCMP study's scores: each image scored once per metric configuration, cached on disk.

A multi-layer metric is scored once per image with every layer (its per-layer similarities, the
*components*); the study's variants, rotations and fitted weights are weighted sums of those. The
cache key covers the metric and its arguments, the build and the image list, so a rerun (after a
crash, or with other statistics settings) scores nothing again.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mocodec.files import atomic_write_bytes
from mocodec.iqa.evaluate import MetricSpec, Progress, score_images

SCORES_FOLDER = "scores"  # per-image scores, one file per metric configuration


@dataclass(frozen=True)
class Scorer:
    """One scoring pass over every image: a metric's score, or a multi-layer metric's components."""

    label: str
    spec: MetricSpec
    components: bool = False
    backbone: str | None = None


@dataclass
class ScoreTable:
    """One scorer's per-image values (items x columns for components), as computed or read from the cache."""

    values: np.ndarray
    columns: list[str]
    higher_is_better: bool
    layers: list[int]
    file: Path
    seconds: float
    cached: bool


def plain(value: Any) -> Any:
    """JSON-safe arguments (paths as strings), for cache keys and study.json."""
    return json.loads(json.dumps(value, default=str))


def _file_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "metric"


def cached_scores(
    scorer: Scorer, items: Sequence[tuple[Path, Path]], root: Path, cache: Path, progress: Progress | None = None
) -> ScoreTable:
    """``scorer``'s values for every ``(image, reference)`` item: read from ``cache`` if scored before, else scored and saved.

    The key covers the metric's name and arguments, what is computed (score or components),
    the build's ``config.json`` (which fixes every image) and the item list.
    """
    names = [f"{image.relative_to(root).as_posix()}|{reference.relative_to(root).as_posix()}" for image, reference in items]
    key_text = json.dumps(
        {
            "metric": scorer.spec.name,
            "kwargs": plain(scorer.spec.kwargs),
            "components": scorer.components,
            "build": hashlib.sha256((root / "config.json").read_bytes()).hexdigest(),
            "items": names,
        },
        sort_keys=True,
    )
    # named by what is computed, not by the label: a metric relabelled (NAME:CONFIG) still finds its scores
    name = scorer.spec.name + (f"-{scorer.backbone}" if scorer.backbone else "")
    path = cache / f"{_file_label(name)}-{hashlib.sha256(key_text.encode()).hexdigest()[:16]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as saved:
                values = saved["values"]
                meta = json.loads(str(saved["meta"]))
            if values.shape[0] == len(items):
                return ScoreTable(values, meta["columns"], meta["higher_is_better"], meta["layers"], path, 0.0, True)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is scored again
    start = time.perf_counter()
    metric = scorer.spec.create().eval()
    fn = metric.similarities if scorer.components else metric.score
    values = score_images(fn, items, progress, f"{scorer.label} ({len(items)} images)")
    columns = list(metric.component_names) if scorer.components else [scorer.label]
    layers = list(metric.layers) if scorer.components else []
    table = ScoreTable(values, columns, bool(metric.higher_is_better), layers, path, time.perf_counter() - start, False)
    key = {k: v for k, v in json.loads(key_text).items() if k != "items"}  # what was scored, without the long image list
    meta = {
        "label": scorer.label,
        "columns": columns,
        "higher_is_better": table.higher_is_better,
        "layers": layers,
        "key": key,
        "images": len(items),
    }
    buffer = io.BytesIO()
    np.savez(buffer, values=values, meta=np.array(json.dumps(meta)))
    atomic_write_bytes(path, buffer.getvalue())
    return table


__all__ = ["SCORES_FOLDER", "Scorer", "ScoreTable", "cached_scores", "plain"]
