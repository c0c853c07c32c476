"""Decoded crops a sweep keeps for the report page (``mocodec report``): few, small, and where the curves disagree.

A results file holds numbers; a page that shows what a codec does to an image needs decoded
images too, made after the sweep. Keeping every decoded image would cost more than the
sweep's files, so a sweep keeps, for at most ``keep`` images (``--keep-crops``, plus the
images ``--keep-images`` names), the centre crop (:data:`CROP_SIZE` px square, at native
resolution so that artefacts show as they are) of the original and of every decoded image,
as lossless WebP files of some tens of KB, in a folder beside the results file
(``task.json`` -> ``task.crops/``, :func:`crops_folder`)::

    task.crops/index.json   {"mocodec": "crops", "version": 1, "crop_size": 192, "keep": 8,
                             "selection": ["agreement", "psnr-rgb"],
                             "images": {"<sample id>": {"score": [...], "pinned": false,
                                        "size": [H, W], "box": [top, left, height, width],
                                        "original": "<file>", "names": {"<class index>": "<name>"},
                                        "points": {"<curve>": {"<point>": {"file": "<file>",
                                                                           "identity": {codec, quality, weights}}}}}}}
    task.crops/<16 hex>-original.webp, <16 hex>-<10 hex>.webp    names derived from the ids, never the ids

**Which images.** Those where the curves disagree most (:func:`disagreement`): per image,
each curve's value of the selection metric (:func:`selection_metrics`: ``agreement`` where the
task reports it, then the first fidelity metric) is interpolated in log-rate at every rate
point inside the range all curves reach, and the spread between the best and the worst curve
is averaged over those rates. The choice is a total order (score, then id), so it is the
same however the images are chunked, sharded (:func:`merge_crops`) or ordered.

**When.** Decoded images exist only while an image is being coded, so an image is a
candidate when this run codes it at every rate point; an image kept earlier gets the crops
of points coded later (a curve added on resume), and a point whose codec changed loses its
crops (:meth:`CropKeeper.prune`). Crops of evicted candidates are never encoded: they wait
in memory until the next save (at most ``keep`` images' worth).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor

from mocodec.errors import ConfigError
from mocodec.evaluation.metrics import RATE
from mocodec.files import atomic_write_bytes, atomic_write_json

FORMAT, VERSION = "crops", 1
CROP_SIZE = 192  # px: what a reader compares side by side at 1:1, zooming in
INDEX = "index.json"
CROP_FILE = re.compile(r"[0-9a-f]{16}-(original|[0-9a-f]{10})\.webp")  # the only names an index may give (never a path)
Summarize = Callable[[Sequence[dict[str, Any]]], Mapping[str, Any]]
Names = Callable[[Sequence[dict[str, Any]]], Mapping[str, str]]


def crops_folder(results: str | Path) -> Path:
    """The crops folder beside a results file: ``task.json`` -> ``task.crops``."""
    results = Path(results)
    return results.with_name(f"{results.stem if results.suffix else results.name}.crops")


def centre_box(height: int, width: int, size: int = CROP_SIZE) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the centre ``size`` square of an image (the whole side where it is smaller)."""
    h, w = min(size, height), min(size, width)
    return (height - h) // 2, (width - w) // 2, h, w


def encode_crop(pixels: np.ndarray) -> bytes:
    """An H x W x 3 uint8 crop as a lossless WebP (the fastest effort: 13 % smaller than PNG, in less time)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="WEBP", lossless=True, method=0, quality=0)
    return buffer.getvalue()


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


# --------------------------------------------------------------------------- which images


def selection_metrics(doc: Mapping[str, Any]) -> list[str]:
    """The metrics images are chosen by: the task's ``agreement`` (every judge reports it), then the first fidelity metric."""
    chosen = ["agreement"] if "agreement" in doc["metrics"] and not doc["metrics"]["agreement"].get("reference") else []
    return chosen + list(doc["fidelity"][:1])


def record_value(record: Mapping[str, Any], metric: str, summarize: Summarize | None = None) -> float:
    """``metric`` of one per-image record (a fidelity metric or a field it holds, else the task's summary of it); nan if none."""
    value = record[metric] if metric in record else (summarize([dict(record)]).get(metric) if summarize else None)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def disagreement(curves: Mapping[str, Sequence[tuple[float, float]]]) -> float:
    """How far apart the curves of one image are: the mean spread of their values at matched rates.

    ``curves``: curve -> (bpp, value) points of one image. Each curve is interpolated in
    log-rate (held flat beyond its ends) at every rate point inside the range all curves
    reach (every rate point if they share none); 0 for fewer than two curves with values.
    """
    usable = []
    for points in curves.values():
        kept = sorted((b, v) for b, v in points if math.isfinite(b) and b > 0 and math.isfinite(v))
        if kept:
            usable.append((np.log([b for b, _ in kept]), np.array([v for _, v in kept])))
    if len(usable) < 2:
        return 0.0
    low, high = max(x[0] for x, _ in usable), min(x[-1] for x, _ in usable)
    rates = np.unique(np.concatenate([x for x, _ in usable]))
    matched = rates[(rates >= low) & (rates <= high)]
    targets = matched if matched.size else rates
    values = np.stack([np.interp(targets, x, y) for x, y in usable])
    return float((values.max(axis=0) - values.min(axis=0)).mean())


def image_score(
    records: Iterable[tuple[str, Mapping[str, Any]]], metrics: Sequence[str], summarize: Summarize | None = None
) -> list[float]:
    """The disagreement of one image's ``(curve, record)`` pairs on each selection metric, in order."""
    records = list(records)
    score = []
    for metric in metrics:
        curves: dict[str, list[tuple[float, float]]] = {}
        for curve, record in records:
            curves.setdefault(curve, []).append((float(record[RATE]), record_value(record, metric, summarize)))
        score.append(disagreement(curves))
    return score


def rank(image_id: str, score: Sequence[float], pinned: bool) -> tuple:
    """Sort key, best first: pinned images, then the highest scores in order, then the id."""
    return (not pinned, *(-s for s in score), image_id)


# --------------------------------------------------------------------------- the kept images


@dataclass
class KeptImage:
    """One kept image: its score, crop box and, per point, a written file name or pixels waiting for the next save."""

    id: str
    score: list[float]
    pinned: bool
    size: tuple[int, int]
    box: tuple[int, int, int, int]
    original: str | np.ndarray
    points: dict[str, dict[str, tuple[str | np.ndarray, dict[str, Any]]]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def rank(self) -> tuple:
        return rank(self.id, self.score, self.pinned)


def read_index(folder: str | Path) -> dict[str, Any] | None:
    """A crops folder's index, or None where there is none, or it is not one, or it names a file outside the folder."""
    path = Path(folder) / INDEX
    try:
        index = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not (isinstance(index, dict) and index.get("mocodec") == FORMAT and index.get("version") == VERSION):
        return None
    try:
        if not all(isinstance(name, str) and CROP_FILE.fullmatch(name) for name in _referenced(index)):
            return None  # a hand-made index must not make a page inline, or a sweep delete, another file
    except (KeyError, TypeError, AttributeError):
        return None
    return index


def _referenced(index: Mapping[str, Any] | None) -> set[str]:
    """Every file an index names."""
    if not index:
        return set()
    files = set()
    for image in index["images"].values():
        files.add(image["original"])
        files.update(p["file"] for points in image["points"].values() for p in points.values())
    return files


def clear_crops(folder: str | Path) -> None:
    """Remove a crops folder's index and the files it names (nothing else), and the folder if that empties it."""
    folder = Path(folder)
    for name in _referenced(read_index(folder)) | {INDEX}:
        (folder / name).unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _kept_from_index(index: Mapping[str, Any]) -> dict[str, KeptImage]:
    kept = {}
    for image_id, image in index["images"].items():
        points = {
            curve: {point: (p["file"], dict(p["identity"])) for point, p in by_point.items()} for curve, by_point in image["points"].items()
        }
        kept[image_id] = KeptImage(
            image_id,
            [float(s) for s in image["score"]],
            bool(image["pinned"]),
            tuple(image["size"]),
            tuple(image["box"]),
            image["original"],
            points,
            dict(image.get("names", {})),
        )
    return kept


class CropKeeper:
    """The crops of the images a sweep keeps (see the module docstring); :meth:`save` writes them beside the results.

    ``keep``: images chosen by score; ``pinned``: ids kept whatever their score;
    ``selection``: the metrics images are scored by; ``summarize``: the task's summary of
    records (for task metrics); ``names``: the task's names of the class indices in records.
    """

    def __init__(
        self,
        folder: str | Path,
        keep: int,
        pinned: Iterable[str] = (),
        selection: Sequence[str] = (),
        summarize: Summarize | None = None,
        names: Names | None = None,
        crop_size: int = CROP_SIZE,
    ) -> None:
        if keep < 0:
            raise ConfigError(f"--keep-crops must be >= 0, got {keep}")
        self.folder, self.keep, self.pinned = Path(folder), keep, set(pinned)
        self.selection, self.summarize, self.names, self.crop_size = list(selection), summarize, names, crop_size
        self.kept: dict[str, KeptImage] = {}
        self._written: set[str] = set()  # files the index on disk names

    @classmethod
    def open(cls, results: str | Path, keep: int, *, fresh: bool, **kwargs: Any) -> CropKeeper:
        """The keeper of ``results``' crops: what its folder holds (a resumed sweep), or nothing (``fresh``: the folder is cleared)."""
        keeper = cls(crops_folder(results), keep, **kwargs)
        if fresh:
            clear_crops(keeper.folder)
            return keeper
        index = read_index(keeper.folder)
        if index is not None:
            keeper._written = _referenced(index)  # crops of another size are replaced, their files removed at the next save
            if index.get("crop_size") == keeper.crop_size:
                keeper.kept = _kept_from_index(index)
                for image in keeper.kept.values():
                    image.pinned = image.pinned or image.id in keeper.pinned
        return keeper

    def prune(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Drop the crops of points whose codec, quality or weights differ from the results' (they are recomputed)."""
        identities = {(e["name"], point): identity for e in entries for point, identity in e["points"].items()}
        for image in self.kept.values():
            for curve, by_point in image.points.items():
                for point in [p for p, (_, identity) in by_point.items() if identities.get((curve, p), identity) != identity]:
                    del by_point[point]

    def wants(self, image_id: str, complete: bool) -> bool:
        """Whether an image being coded may be kept: one already kept, a pinned one, or any coded at every point."""
        return image_id in self.kept or (complete and (image_id in self.pinned or self.keep > 0))

    def offer(
        self,
        image_id: str,
        original: Tensor,
        decoded: Sequence[tuple[str, str, Tensor, Mapping[str, Any], Mapping[str, Any]]],
        complete: bool,
    ) -> None:
        """One image just coded and judged: ``original`` (3 x H x W in [0, 1]) and, per point coded now,
        ``(curve, point, decoded 3 x H x W uint8, record, point identity)``; ``complete``: coded at every point of the sweep."""
        if not self.wants(image_id, complete):
            return
        height, width = original.shape[-2:]
        box = centre_box(height, width, self.crop_size)
        image = self.kept.get(image_id)
        if image is None:
            score = image_score([(curve, record) for curve, _, _, record, _ in decoded], self.selection, self.summarize)
            candidate = KeptImage(image_id, score, image_id in self.pinned, (height, width), box, "")
            if not self._admits(candidate):
                return
            candidate.original = _crop(original.mul(255).round(), box)  # only now: most candidates are turned away
            image = self.kept[image_id] = candidate
        for curve, point, pixels, _, identity in decoded:
            image.points.setdefault(curve, {})[point] = (_crop(pixels, image.box), dict(identity))
        if self.names is not None:
            image.names.update({str(k): str(v) for k, v in self.names([dict(r) for *_, r, _ in decoded]).items()})

    def _admits(self, candidate: KeptImage) -> bool:
        """Whether ``candidate`` enters the kept set (evicting the worst-ranked unpinned image if the set is full)."""
        if candidate.pinned:
            return True
        chosen = [image for image in self.kept.values() if not image.pinned]
        if len(chosen) < self.keep:
            return True
        worst = max(chosen, key=KeptImage.rank, default=None)
        if worst is None or candidate.rank() > worst.rank():
            return False
        del self.kept[worst.id]
        return True

    def _trim(self) -> None:
        """At most ``keep`` unpinned images (a resumed sweep may ask for fewer than its folder holds)."""
        chosen = sorted((image for image in self.kept.values() if not image.pinned), key=KeptImage.rank)
        for image in chosen[self.keep :]:
            del self.kept[image.id]

    def save(self) -> None:
        """Write the pending crops, then the index, then remove the files of images no longer kept."""
        self._trim()
        if not self.kept and not self._written:
            return
        for image in self.kept.values():
            stem = _key(image.id)[:16]
            if isinstance(image.original, np.ndarray):
                image.original = self._write(f"{stem}-original.webp", image.original)
            for curve, by_point in image.points.items():
                for point, (pixels, identity) in by_point.items():
                    if isinstance(pixels, np.ndarray):
                        by_point[point] = (self._write(f"{stem}-{_key(curve, point)[:10]}.webp", pixels), identity)
        index = self.index()
        atomic_write_json(self.folder / INDEX, index)
        referenced = _referenced(index)
        for name in self._written - referenced:
            (self.folder / name).unlink(missing_ok=True)
        self._written = referenced

    def _write(self, name: str, pixels: np.ndarray) -> str:
        atomic_write_bytes(self.folder / name, encode_crop(pixels))
        return name

    def index(self) -> dict[str, Any]:
        """The index of the kept images (after :meth:`save`: every crop a file name), best first."""
        images = {}
        for image in sorted(self.kept.values(), key=KeptImage.rank):
            images[image.id] = {
                "score": image.score,
                "pinned": image.pinned,
                "size": list(image.size),
                "box": list(image.box),
                "original": image.original,
                "names": dict(sorted(image.names.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else kv[0])),
                "points": {
                    curve: {point: {"file": f, "identity": identity} for point, (f, identity) in by_point.items()}
                    for curve, by_point in image.points.items()
                },
            }
        return {
            "mocodec": FORMAT,
            "version": VERSION,
            "crop_size": self.crop_size,
            "keep": self.keep,
            "selection": self.selection,
            "images": images,
        }


def _crop(pixels: Tensor, box: tuple[int, int, int, int]) -> np.ndarray:
    """The ``box`` of a 3 x H x W image of 0-255 values as an H x W x 3 uint8 array of its own (the image can then go)."""
    top, left, h, w = box
    return np.ascontiguousarray(pixels[:, top : top + h, left : left + w].permute(1, 2, 0).to("cpu").numpy().astype(np.uint8))


# --------------------------------------------------------------------------- merging (shards)


def merge_crops(sources: Sequence[str | Path], out: str | Path, keep: int | None = None) -> int:
    """The crops of ``sources``' results files (shards of disjoint images) as ``out``'s; the number of images kept.

    The best-ranked ``keep`` images of all of them (default: the most any source kept) plus
    every pinned one: what one process would have kept. Sources without crops are skipped;
    an image in several sources takes the points of each (the later wins a point both hold).
    """
    target = crops_folder(out)
    indexes = [(crops_folder(s), index) for s in sources if (index := read_index(crops_folder(s))) is not None]
    if not indexes:
        clear_crops(target)
        return 0
    keep = keep if keep is not None else max(int(index.get("keep", 0)) for _, index in indexes)
    merged: dict[str, tuple[Path, dict[str, Any], dict[str, Path]]] = {}  # id -> (folder of its original, its entry, file -> folder)
    for folder, index in indexes:
        for image_id, image in index["images"].items():
            if image_id not in merged:
                merged[image_id] = (folder, json.loads(json.dumps(image)), {image["original"]: folder})
                merged[image_id][1]["points"] = {}
            _, entry, homes = merged[image_id]
            for curve, by_point in image["points"].items():
                for point, p in by_point.items():
                    entry["points"].setdefault(curve, {})[point] = p
                    homes[p["file"]] = folder
            entry["pinned"] = entry["pinned"] or image["pinned"]
            entry["names"].update(image.get("names", {}))
    order = sorted(merged, key=lambda i: rank(i, merged[i][1]["score"], merged[i][1]["pinned"]))
    chosen = [i for i in order if merged[i][1]["pinned"]] + [i for i in order if not merged[i][1]["pinned"]][:keep]
    old = _referenced(read_index(target))
    images = {}
    for image_id in sorted(chosen, key=order.index):
        _, entry, homes = merged[image_id]
        for name, folder in homes.items():
            if folder.resolve() != target.resolve():
                atomic_write_bytes(target / name, (folder / name).read_bytes())
        images[image_id] = entry
    first = indexes[0][1]
    index = {**{k: first[k] for k in ("mocodec", "version", "crop_size", "selection")}, "keep": keep, "images": images}
    atomic_write_json(target / INDEX, index)
    for name in old - _referenced(index):
        (target / name).unlink(missing_ok=True)
    return len(images)


__all__ = [
    "CROP_SIZE",
    "CropKeeper",
    "KeptImage",
    "centre_box",
    "clear_crops",
    "crops_folder",
    "disagreement",
    "encode_crop",
    "image_score",
    "merge_crops",
    "read_index",
    "record_value",
    "selection_metrics",
]
