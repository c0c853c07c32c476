"""COCO object-detection annotations as task samples: ``instances_*.json`` plus an image folder.

The released layout is ``annotations/instances_val2017.json`` beside ``val2017/``. Each
image becomes one :class:`~mocodec.tasks.base.Sample` (id: the COCO image id) whose
target is a tuple of :class:`ObjectBox` in COCO's convention, ``[x, y, width, height]``
in pixels from the top-left corner. Crowd regions are kept with ``ignore=True``: COCO's
scorer neither rewards nor penalises detections on them. Images listed in the json
but absent from the folder are skipped and reported through ``missing``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mocodec.data.io import image_present
from mocodec.data.samples import Sample
from mocodec.errors import ConfigError


@dataclass(frozen=True)
class ObjectBox:
    """One annotated object: COCO-style ``(x, y, w, h)`` in pixels, its class name, and
    whether scoring ignores it (COCO crowd regions, VOC "difficult" objects)."""

    bbox: tuple[float, float, float, float]
    category: str
    ignore: bool = False


def find_coco(root: str | Path, images: str | Path | None = None) -> tuple[Path, Path]:
    """The (instances json, image folder) pair of a COCO download.

    ``root`` is the json itself or the folder holding ``annotations/instances_*.json``
    (``val2017`` preferred when several splits are there); the image folder defaults
    to the split's folder next to ``annotations/`` (``instances_val2017.json`` -> ``val2017/``).
    """
    root = Path(root)
    if root.is_file():
        annotations = root
    else:
        candidates = sorted((root / "annotations").glob("instances_*.json")) + sorted(root.glob("instances_*.json"))
        if not candidates:
            raise ConfigError(f"no COCO annotations under {root}: expected {root / 'annotations' / 'instances_val2017.json'}")
        preferred = [p for p in candidates if p.name == "instances_val2017.json"]
        if not preferred and len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            raise ConfigError(f"several COCO annotation files under {root} ({names}); give the one to use as the dataset path")
        annotations = (preferred or candidates)[0]
    if images is None:
        split = annotations.stem.removeprefix("instances_")
        base = annotations.parent.parent if annotations.parent.name == "annotations" else annotations.parent
        images = base / split
    images = Path(images)
    if not images.is_dir():
        raise ConfigError(
            f"COCO image folder {images} does not exist; place the images of {annotations.name} there or pass --dataset-option images=PATH"
        )
    return annotations, images


def read_json(path: Path, what: str) -> Any:
    """Load a released annotation/question file, with one-line errors for the usual breakages."""
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist; check the dataset path")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} is not valid JSON ({getattr(exc, 'msg', exc)}); re-download it") from None


def coco_samples(
    annotations: str | Path,
    images: str | Path,
    missing: list[tuple[str, str]] | None = None,
) -> list[Sample]:
    """One sample per image of a COCO instances file, targets as tuples of :class:`ObjectBox`.

    Images absent from ``images`` are appended to ``missing`` as ``(path, reason)`` and
    skipped; with ``missing=None`` the first absent image raises instead.
    """
    annotations, images = Path(annotations), Path(images)
    data = read_json(annotations, "COCO annotation file")
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= data.keys():
        raise ConfigError(f"{annotations} is not a COCO instances file (needs 'images', 'annotations' and 'categories')")
    categories = {c["id"]: c["name"] for c in data["categories"]}
    boxes: dict[int, list[ObjectBox]] = defaultdict(list)
    for ann in data["annotations"]:
        if ann["category_id"] not in categories:
            raise ConfigError(f"annotation {ann.get('id')} in {annotations} has category id {ann['category_id']}, not among its categories")
        x, y, w, h = (float(v) for v in ann["bbox"])
        boxes[ann["image_id"]].append(ObjectBox((x, y, w, h), categories[ann["category_id"]], bool(ann.get("iscrowd", 0))))
    samples = []
    for image in sorted(data["images"], key=lambda im: im["id"]):
        path = images / image["file_name"]
        if not image_present(path, f"listed in {annotations.name} but absent", missing):
            continue
        samples.append(Sample(str(image["id"]), path, tuple(boxes.get(image["id"], ()))))
    return samples
