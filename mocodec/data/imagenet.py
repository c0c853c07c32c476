"""ImageNet-style classification samples, in the layouts the data is released in.

``imagenet_samples(root, layout="auto")`` reads:

- ``imagefolder``: torchvision's ``ImageFolder`` layout, ``root/<synset>/<image>``
  (``val/n01440764/ILSVRC2012_val_00000293.JPEG``). Folders may also be named by the
  model's class names (``tabby``, ``golden_retriever``; spaces or underscores) when the
  layout is given explicitly. Sample ids: paths relative to ``root``.
- ``loc``: the flat release with ``LOC_val_solution.csv`` (``ImageId,PredictionString``,
  the first token of ``PredictionString`` is the synset); images ``<ImageId>.JPEG``
  anywhere under ``root`` (e.g. ``ILSVRC/Data/CLS-LOC/val/``). Sample ids: ``ImageId``.
  Images listed in the csv but absent are skipped, counted and warned about.
- ``unlabeled``: any image folder (targets ``None``: label-free agreement only).
- ``root=None``: the offline default, tiles of the held-out scikit-image photographs
  (:mod:`mocodec.data.embedded`), unlabeled. Top-1 agreement on a handful of images is
  noisy, so the photographs are cut into many overlapping tiles: 62 of 288 px every 72 px.
  (Tiles this large hold enough of an object for a confident judge: on 224 px tiles
  EfficientNet-Lite0 flips on a quarter of them even at JPEG quality 95.)

``auto`` picks ``loc`` when the csv is present, ``imagefolder`` when every sub-folder
of ``root`` is named by a synset, and ``unlabeled`` otherwise.

Class indices: a synset's index is its position in the *sorted* list of the 1000
ILSVRC-2012 synsets. That is the order every ImageNet classifier of timm and torchvision
is trained with, and the order ``ImageFolder`` gives a complete validation tree; mapping
through the full list keeps indices right for subsets (a tree with 10 of the classes)
too. The list comes with timm (``timm.data.ImageNetInfo``), so it is available offline.
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from mocodec.backbones import import_timm, import_torchvision
from mocodec.data.embedded import crops, photos
from mocodec.data.io import IMAGE_EXTENSIONS, list_images
from mocodec.data.samples import Sample
from mocodec.errors import ConfigError
from mocodec.evaluation.shards import Shard
from mocodec.files import atomic_write_bytes

LOC_CSV = "LOC_val_solution.csv"
LAYOUTS = ("auto", "imagefolder", "loc", "unlabeled")
SYNSET = re.compile(r"n\d{8}")


def imagenet_synsets() -> list[str]:
    """The 1000 ILSVRC-2012 synsets in class-index order (sorted), from timm."""
    try:
        synsets = list(import_timm().data.ImageNetInfo("imagenet-1k").label_names())
    except Exception as exc:  # an old timm has no ImageNetInfo; any failure means the same to the user
        raise ConfigError(
            f"the ImageNet synset list is unavailable ({type(exc).__name__}); install timm>=0.9 to map synsets to class indices"
        ) from None
    if len(synsets) != 1000 or synsets != sorted(synsets):
        raise ConfigError("timm's ImageNet synset list is not the 1000 sorted ILSVRC-2012 synsets; upgrade timm")
    return synsets


def _normalise_name(name: str) -> str:
    return name.strip().lower().replace("_", " ")


def class_index_map(class_names: Sequence[str] | None = None) -> dict[str, int]:
    """Folder/synset name -> class index: every ImageNet synset, plus unambiguous class names."""
    index = {s: i for i, s in enumerate(imagenet_synsets())}
    if class_names:
        seen: dict[str, list[int]] = {}
        for i, name in enumerate(class_names):
            seen.setdefault(_normalise_name(name), []).append(i)
        # Some ImageNet names repeat ("crane" the bird and the machine): those need the synset.
        index.update({name: ids[0] for name, ids in seen.items() if len(ids) == 1})
    return index


def imagefolder_samples(root: Path, class_names: Sequence[str] | None = None) -> list[Sample]:
    """``root/<synset or class name>/<image>``; folder names the model does not know are an error."""
    folder_dataset = import_torchvision().datasets.folder
    folders, _ = folder_dataset.find_classes(str(root))
    index = class_index_map(class_names)
    unknown = [f for f in folders if f not in index and _normalise_name(f) not in index]
    if unknown:
        hint = "the model's class names" if class_names else "class names (the model has none)"
        raise ConfigError(
            f"class folder(s) {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} in {root} are neither "
            f"ImageNet synsets (n01440764, ...) nor {hint}; rename them or use --dataset-option layout=unlabeled"
        )
    class_to_idx = {f: index.get(f, index.get(_normalise_name(f))) for f in folders}
    pairs = folder_dataset.make_dataset(str(root), class_to_idx, extensions=IMAGE_EXTENSIONS, allow_empty=True)
    return [Sample(Path(p).relative_to(root).as_posix(), Path(p), label) for p, label in sorted(pairs)]


def read_loc_solution(csv_path: Path) -> dict[str, str]:
    """``ImageId -> synset`` from a ``LOC_val_solution.csv`` (first token of PredictionString)."""
    try:
        text = csv_path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {csv_path} ({type(exc).__name__}); check the file") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"ImageId", "PredictionString"} <= set(reader.fieldnames):
        raise ConfigError(f"{csv_path} has no ImageId,PredictionString header; is it the ILSVRC LOC_val_solution.csv?")
    labels = {}
    for line, row in enumerate(reader, start=2):
        tokens = (row.get("PredictionString") or "").split()
        if not tokens or not SYNSET.fullmatch(tokens[0]):
            raise ConfigError(f"{csv_path} line {line}: PredictionString does not start with a synset (n01440764 ...)")
        labels[row["ImageId"]] = tokens[0]
    return labels


def loc_samples(root: Path, csv_path: Path | None = None) -> list[Sample]:
    """The flat layout: images named ``<ImageId>.<ext>`` under ``root``, labels from the csv."""
    csv_path = Path(csv_path) if csv_path else root / LOC_CSV
    labels = read_loc_solution(csv_path)
    index = class_index_map()
    unknown = sorted({s for s in labels.values() if s not in index})
    if unknown:
        raise ConfigError(f"{csv_path} names synsets outside ILSVRC-2012's 1000 classes: {', '.join(unknown[:5])}")
    files = {p.stem: p for p in list_images(root)}
    samples = [Sample(image_id, files[image_id], index[synset]) for image_id, synset in sorted(labels.items()) if image_id in files]
    missing = len(labels) - len(samples)
    if not samples:
        raise ConfigError(f"none of the {len(labels)} images listed in {csv_path} are under {root} (as <ImageId>.JPEG)")
    if missing:
        warnings.warn(
            f"{missing} of the {len(labels)} images listed in {csv_path.name} are absent under {root}; evaluating the {len(samples)} present",
            stacklevel=2,
        )
    return samples


def unlabeled_samples(root: Path) -> list[Sample]:
    return [Sample(p.relative_to(root).as_posix(), p) for p in list_images(root)]


def cache_dir() -> Path:
    """Where mocodec keeps files it derives once (``$MOCODEC_CACHE``, else ``$XDG_CACHE_HOME/mocodec``)."""
    if os.environ.get("MOCODEC_CACHE"):
        return Path(os.environ["MOCODEC_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mocodec"


def embedded_samples(tile: int = 288, stride: int = 72, folder: str | Path | None = None) -> list[Sample]:
    """Overlapping ``tile`` x ``tile`` crops of the held-out embedded photographs, written once as PNG."""
    if tile < 32 or stride < 1:
        raise ConfigError(f"embedded tiles need tile >= 32 and stride >= 1 (got tile={tile}, stride={stride})")
    folder = Path(folder) if folder else cache_dir() / f"embedded-val-{tile}px-stride{stride}"
    samples = []
    for name, image in photos("val").items():
        for i, crop in enumerate(crops(image, tile, stride)):
            path = folder / f"{name}_{i:02d}.png"
            if not path.is_file():  # PNG is lossless: the tile on disk is the array itself
                buf = io.BytesIO()
                Image.fromarray(crop).save(buf, format="PNG")
                atomic_write_bytes(path, buf.getvalue())
            samples.append(Sample(f"embedded/{path.stem}", path))
    return samples


def detect_layout(root: Path) -> str:
    if (root / LOC_CSV).is_file():
        return "loc"
    folders = [p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if folders and all(SYNSET.fullmatch(f) for f in folders):
        return "imagefolder"
    return "unlabeled"


def imagenet_samples(
    root: str | Path | None = None,
    layout: str = "auto",
    labels: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    tile: int = 288,
    stride: int = 72,
    classes: str | None = None,
) -> list[Sample]:
    """Classification samples under ``root`` (see the module docstring); ``None``: the embedded tiles.

    ``labels``: a ``LOC_val_solution.csv`` elsewhere than ``root``; ``class_names``: the
    model's, to accept class-name folders; ``tile``/``stride``: of the embedded default.
    ``classes``: ``"I/N"`` keeps every N-th class starting at the I-th, of the classes sorted
    by synset (or folder name) -- the rule a training set's ``{root, classes: I/N}`` uses, so
    ``0/2`` trains and ``1/2`` judges on disjoint images.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown ImageNet layout '{layout}'; use one of {', '.join(LAYOUTS)}")
    if root is None:
        return embedded_samples(tile, stride)
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"dataset folder {root} does not exist or is not a directory")
    if layout == "auto":
        layout = "loc" if labels else detect_layout(root)
    if layout == "loc":
        samples = loc_samples(root, Path(labels) if labels else None)
    elif layout == "imagefolder":
        samples = imagefolder_samples(root, class_names)
    else:
        samples = unlabeled_samples(root)
    if not samples:
        raise ConfigError(f"dataset folder {root} holds no images ({', '.join(IMAGE_EXTENSIONS[:4])}, ...)")
    if classes is not None:
        if layout == "unlabeled":
            raise ConfigError(f"classes={classes} keeps some classes of a labelled dataset, but {root} has no classes")
        kept = set(Shard.parse(classes).select(sorted({s.target for s in samples}), key=lambda label: f"{label:06d}"))
        samples = [s for s in samples if s.target in kept]
    return samples
