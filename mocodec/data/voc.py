"""Pascal VOC detection (VOC2007/VOC2012 layout) as task samples with COCO class names.

The released layout: ``VOC2007/Annotations/<id>.xml``, ``VOC2007/JPEGImages/<id>.jpg`` and
``VOC2007/ImageSets/Main/<split>.txt`` listing the ids. Detectors trained on COCO are
scored on VOC by mapping VOC's 20 class names onto COCO's (:data:`VOC_TO_COCO`; all 20
exist in COCO, six under another name). Boxes are converted to COCO's convention:
VOC's corners are 1-based inclusive pixel indices, so ``(xmin, ymin, xmax, ymax)``
covers ``[xmin - 1, xmax] x [ymin - 1, ymax]`` in pixel coordinates (as Detectron2
converts them). Objects marked ``difficult`` are ignored in scoring, as VOC's own
protocol does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from mocodec.data.coco import ObjectBox
from mocodec.data.io import image_present
from mocodec.data.samples import Sample
from mocodec.errors import ConfigError

VOC_TO_COCO = {
    "aeroplane": "airplane",
    "bicycle": "bicycle",
    "bird": "bird",
    "boat": "boat",
    "bottle": "bottle",
    "bus": "bus",
    "car": "car",
    "cat": "cat",
    "chair": "chair",
    "cow": "cow",
    "diningtable": "dining table",
    "dog": "dog",
    "horse": "horse",
    "motorbike": "motorcycle",
    "person": "person",
    "pottedplant": "potted plant",
    "sheep": "sheep",
    "sofa": "couch",
    "train": "train",
    "tvmonitor": "tv",
}


def find_voc(root: str | Path) -> Path:
    """The ``VOC20xx`` folder of a download: ``root`` itself, or its only ``VOC20xx`` child (``VOCdevkit/``)."""
    root = Path(root)
    if (root / "Annotations").is_dir():
        return root
    years = sorted(p for p in root.glob("VOC20*") if (p / "Annotations").is_dir())
    if len(years) == 1:
        return years[0]
    if years:
        raise ConfigError(f"{root} holds several VOC sets ({', '.join(p.name for p in years)}); give the one to use as the dataset path")
    raise ConfigError(f"no VOC layout under {root}: expected {root / 'Annotations'} and {root / 'JPEGImages'}")


def parse_voc_xml(path: Path) -> tuple[ObjectBox, ...]:
    """The objects of one VOC annotation file, in COCO's box convention and class names."""
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        raise ConfigError(f"VOC annotation {path} does not exist; the split lists it, so the download is incomplete") from None
    except ET.ParseError as exc:
        raise ConfigError(f"VOC annotation {path} is not valid XML ({exc}); re-download it") from None
    objects = []
    for obj in tree.getroot().iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_TO_COCO:
            raise ConfigError(f"unknown VOC class '{name}' in {path}; VOC classes: {', '.join(VOC_TO_COCO)}")
        box = obj.find("bndbox")
        if box is None:
            raise ConfigError(f"an object '{name}' in {path} has no <bndbox>")
        xmin, ymin, xmax, ymax = (float(box.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax"))
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        objects.append(ObjectBox((xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1), VOC_TO_COCO[name], difficult))
    return tuple(objects)


def voc_samples(root: str | Path, split: str = "test", missing: list[tuple[str, str]] | None = None) -> list[Sample]:
    """One sample per id of ``ImageSets/Main/<split>.txt``, targets as tuples of :class:`ObjectBox`.

    Images absent from ``JPEGImages`` are appended to ``missing`` and skipped (``missing=None``:
    raise); an id whose annotation file is absent is an error, since its labels are unknown.
    """
    root = find_voc(root)
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        present = sorted(p.stem for p in (root / "ImageSets" / "Main").glob("*.txt") if "_" not in p.stem)
        hint = f"splits present: {', '.join(present)}" if present else "the ImageSets folder is missing"
        raise ConfigError(f"VOC split file {listing} does not exist ({hint}); choose one with --dataset-option split=NAME")
    samples = []
    for image_id in listing.read_text().split():
        path = root / "JPEGImages" / f"{image_id}.jpg"
        if not image_present(path, f"listed in {listing.name} but absent", missing):
            continue
        samples.append(Sample(image_id, path, parse_voc_xml(root / "Annotations" / f"{image_id}.xml")))
    return samples
