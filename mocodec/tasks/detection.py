"""Object detection on decoded images: COCO mAP against labels, and label-free agreement mAP.

Metrics, all from pycocotools' ``COCOeval`` (bbox, 100 detections per image, all areas):

- ``map`` / ``map50``: mAP@[.5:.95] and mAP@0.5 of the boxes found on the decoded image
  against the dataset's labels (COCO, or VOC mapped to COCO's class names);
- ``agreement`` / ``agreement50``: the same, with the detector's confident boxes on the
  *original* image (score >= ``agreement_conf``) as the labels: 1.0 when decoding changes
  nothing the detector sees, and no labels needed;
- ``reference-boxes``: mean number of those boxes per original (how much agreement rests on).

Each per-image record holds what COCOeval needs, so records from any shards merge into
exactly the figures of one run::

    {"detections": [[x, y, w, h, score, class], ...],   # on the decoded image
     "reference": [[x, y, w, h, score, class], ...],    # on the original, score >= agreement_conf
     "ground_truth": [[x, y, w, h, class, ignore], ...] or null}

Boxes are COCO's ``[x, y, width, height]`` in pixels of the image, rounded to 0.01 px;
``class`` indexes the detector's class names; ``ignore`` marks COCO crowd regions and
VOC "difficult" objects, which COCOeval neither rewards nor penalises. An image without
any detection still counts: every labelled object in it is a miss.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from mocodec.data.coco import ObjectBox, coco_samples, find_coco
from mocodec.data.embedded import write_split
from mocodec.data.imagenet import cache_dir
from mocodec.data.io import list_images
from mocodec.data.voc import voc_samples
from mocodec.errors import ConfigError
from mocodec.evaluation.metrics import Metric
from mocodec.tasks.base import Sample, Task
from mocodec.tasks.detectors import Detections, create_detector
from mocodec.tasks.inputs import number_option, report_missing, to_uint8_images
from mocodec.tasks.registry import register_task

LAYOUTS = ("auto", "coco", "voc", "unlabeled")


def detection_rows(det: Detections) -> list[list[float]]:
    """``[x, y, w, h, score, class]`` rows (COCO boxes, 0.01 px) of one image's detections."""
    boxes = np.asarray(det.boxes, dtype=np.float64).reshape(-1, 4)  # float32 would print 0.1 as 0.10000000149
    xywh = np.round(np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1), 2)
    scores = np.round(np.asarray(det.scores, dtype=np.float64), 5)
    return [[*box, score, int(label)] for box, score, label in zip(xywh.tolist(), scores.tolist(), det.labels.tolist())]


def coco_map(
    ground_truth: Sequence[Sequence[Sequence[float]]], detections: Sequence[Sequence[Sequence[float]]]
) -> tuple[float | None, float | None]:
    """(mAP@[.5:.95], mAP@0.5) of ``detections`` against ``ground_truth`` with pycocotools.

    Both are per-image lists: ground truth rows ``[x, y, w, h, class, ignore]``, detection
    rows ``[x, y, w, h, score, class]``. Classes without any labelled object are left out
    of the mean, as COCOeval does; with no labelled object at all mAP is undefined (None).
    """
    from pycocotools.coco import COCO  # the one importer of the optional pycocotools ([detect] extra)
    from pycocotools.cocoeval import COCOeval

    if len(ground_truth) != len(detections):
        raise ValueError(f"{len(ground_truth)} images of ground truth but {len(detections)} of detections")
    annotations = [
        {"id": n, "image_id": image_id, "bbox": [x, y, w, h], "area": w * h, "category_id": int(c) + 1, "iscrowd": int(ignore)}
        for n, (image_id, x, y, w, h, c, ignore) in enumerate(
            ((i, *row) for i, rows in enumerate(ground_truth, start=1) for row in rows), start=1
        )
    ]
    if all(a["iscrowd"] for a in annotations):
        return None, None
    results = [
        {"image_id": i, "bbox": [x, y, w, h], "score": s, "category_id": int(c) + 1}
        for i, rows in enumerate(detections, start=1)
        for x, y, w, h, s, c in rows
    ]
    if not results:  # pycocotools cannot load an empty result list; nothing found is mAP 0
        return 0.0, 0.0
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i} for i in range(1, len(ground_truth) + 1)],
        "annotations": annotations,
        "categories": [{"id": c} for c in sorted({a["category_id"] for a in annotations})],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports progress on stdout
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0]), float(evaluation.stats[1])


@register_task(
    name="detection", test_kwargs={"model": "yolo11n", "pretrained": False, "imgsz": 64, "conf": 1e-9, "max_det": 5, "agreement_conf": 0.0}
)
class DetectionTask(Task):
    """A frozen detector judging decoded images against labels and against its own boxes on the originals.

    ``model``: an ultralytics YOLO name (``yolo11n``, ``yolov8s``), an architecture yaml, or a
    torchvision Faster R-CNN name (:mod:`mocodec.tasks.detectors`); ``weights``: a local
    checkpoint instead of the published one; ``pretrained=False``: random initialisation.

    ``conf``/``iou``/``max_det``/``imgsz`` configure the detector as for a COCO evaluation
    (ultralytics' validation defaults); ``agreement_conf`` picks the boxes on the original
    that serve as labels for agreement (ultralytics' prediction default).
    """

    name = "detection"
    metrics = (
        Metric("map", "mAP@[.5:.95]", per_image=False),
        Metric("map50", "mAP@0.5", per_image=False),
        Metric("agreement", "agreement mAP@[.5:.95] (original's boxes as labels)", per_image=False),
        Metric("agreement50", "agreement mAP@0.5 (original's boxes as labels)", per_image=False),
        Metric("reference-boxes", "boxes per original image", reference=True),
    )

    def __init__(
        self,
        model: str = "yolo11n",
        weights: str | Path | None = None,
        pretrained: bool = True,
        conf: float = 0.001,
        iou: float = 0.7,
        max_det: int = 100,
        imgsz: int = 640,
        agreement_conf: float = 0.25,
        device: str | None = None,
    ) -> None:
        options = {
            "conf": number_option(conf, "conf", float, 0),
            "iou": number_option(iou, "iou", float, 0),
            "max_det": number_option(max_det, "max_det", int, 1),
            "imgsz": number_option(imgsz, "imgsz", int, 32),
        }
        self.detector = create_detector(model, weights, pretrained=pretrained, device=device, **options)
        self.agreement_conf = number_option(agreement_conf, "agreement_conf", float, 0)
        self.class_index = {name: i for i, name in reversed(list(enumerate(self.detector.names)))}

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, **self.detector.identity(), "agreement_conf": self.agreement_conf}

    # ------------------------------------------------------------------ data

    def dataset(
        self,
        root: str | Path | None = None,
        layout: str = "auto",
        split: str = "test",
        annotations: str | Path | None = None,
        images: str | Path | None = None,
    ) -> list[Sample]:
        """Samples of a COCO download (instances json + images), a VOC folder, or any image folder.

        ``layout`` ``auto`` recognises COCO by ``annotations/instances_*.json`` (or a json
        given as ``root``/``annotations``), VOC by ``Annotations/`` (or one ``VOC20xx/``
        inside), and takes any other folder as unlabeled images (agreement only);
        ``root=None`` is the held-out embedded photographs, unlabeled. ``split`` is VOC's
        image list; ``images`` overrides COCO's image folder. Images the labels list but
        the folder lacks are skipped with a warning.
        """
        if layout not in LAYOUTS:
            raise ConfigError(f"unknown detection layout '{layout}'; use one of {', '.join(LAYOUTS)}")
        if root is None and annotations is None:
            return _embedded_samples()
        root = Path(root if root is not None else annotations)
        if not root.exists():
            raise ConfigError(f"dataset {root} does not exist; give a COCO/VOC download or an image folder")
        layout = _detect_layout(root, annotations) if layout == "auto" else layout
        missing: list[tuple[str, str]] = []
        if layout == "coco":
            samples = coco_samples(*find_coco(annotations or root, images), missing=missing)
        elif layout == "voc":
            samples = voc_samples(root, split, missing=missing)
        else:
            samples = _unlabeled_samples(root)
        report_missing(samples, missing)
        self._check_classes(box.category for s in samples for box in (s.target or ()))
        return samples

    def _check_classes(self, categories: Iterable[str]) -> None:
        unknown = sorted(set(categories) - self.class_index.keys())
        if unknown:
            raise ConfigError(
                f"class(es) {', '.join(unknown[:5])} of the dataset are not among the detector's {len(self.detector.names)} "
                f"classes ({', '.join(self.detector.names[:4])}, ...); rename them in the annotations or use a detector trained on them"
            )

    # ------------------------------------------------------------------ evaluation

    def reference(self, original: Tensor) -> list[Detections]:
        """The detector's confident boxes on each original: the labels of the agreement metrics."""
        return [_above(det, self.agreement_conf) for det in self.detector(to_uint8_images(original))]

    def compare(self, references: Sequence[Detections], decoded: Tensor, targets: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        targets = targets if targets is not None else [None] * len(references)
        return [
            {"detections": detection_rows(det), "reference": detection_rows(ref), "ground_truth": self._ground_truth_rows(target)}
            for det, ref, target in zip(self.detector(to_uint8_images(decoded)), references, targets, strict=True)
        ]

    def evaluate(self, original: Tensor, decoded: Tensor, targets: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        return self.compare(self.reference(original), decoded, targets)

    def _ground_truth_rows(self, target: Sequence[ObjectBox] | None) -> list[list[float]] | None:
        if target is None:
            return None
        self._check_classes(box.category for box in target)
        return [[*box.bbox, self.class_index[box.category], int(box.ignore)] for box in target]

    @classmethod
    def summarize(cls, records: Sequence[dict[str, Any]]) -> dict[str, float | None]:
        labelled = [r for r in records if r["ground_truth"] is not None]
        map_all, map50 = coco_map([r["ground_truth"] for r in labelled], [r["detections"] for r in labelled]) if labelled else (None, None)
        pseudo_labels = [[[x, y, w, h, c, 0] for x, y, w, h, _, c in r["reference"]] for r in records]
        agreement, agreement50 = coco_map(pseudo_labels, [r["detections"] for r in records])
        return {
            "map": map_all,
            "map50": map50,
            "agreement": agreement,
            "agreement50": agreement50,
            "reference-boxes": float(np.mean([len(r["reference"]) for r in records])) if records else None,
        }


def _above(det: Detections, threshold: float) -> Detections:
    keep = det.scores >= threshold
    return Detections(det.boxes[keep], det.scores[keep], det.labels[keep])


def _detect_layout(root: Path, annotations: str | Path | None) -> str:
    if annotations is not None or root.suffix == ".json" or any((root / "annotations").glob("instances_*.json")):
        return "coco"
    if (root / "Annotations").is_dir() or any(p.is_dir() for p in root.glob("VOC20*/Annotations")):
        return "voc"
    return "unlabeled"


def _unlabeled_samples(root: Path) -> list[Sample]:
    samples = [Sample(p.relative_to(root).as_posix(), p) for p in list_images(root)]
    if not samples:
        raise ConfigError(f"dataset folder {root} holds no images, COCO annotations or VOC layout")
    return samples


def _embedded_samples() -> list[Sample]:
    """The held-out embedded photographs (a person, a cat, a cup, ...), whole, unlabeled."""
    return [Sample(f"embedded/{p.stem}", p) for p in write_split(cache_dir() / "embedded-val", "val")]
