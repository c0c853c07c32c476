"""Object detectors behind one small interface, so the detection task does not care whose they are.

A detector is called on a list of H x W x 3 uint8 RGB images (what an 8-bit PNG of the
image holds) and returns one :class:`Detections` per image, in that image's pixels;
``names[i]`` is the name of class ``i``. Two families:

- **ultralytics** (``yolo11n``, ``yolov8s``, ... or a local ``.pt``): letterboxed to
  ``imgsz``, NMS at ``iou``, boxes above ``conf``, at most ``max_det``. An architecture
  yaml (``yolo11n.yaml``), or ``pretrained=False``, builds a randomly initialised model;
  its 80 placeholder class names are COCO's, in COCO's order, as for every official YOLO.
- **torchvision** Faster R-CNN (``fasterrcnn_resnet50_fpn``, ...): COCO-trained weights
  (``torchvision.models.get_model_weights(name).DEFAULT``), classes indexed by COCO
  category id as in the weights' ``categories`` (placeholders ``N/A`` included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from mocodec.backbones import import_torchvision, torchvision_weights_file
from mocodec.errors import ConfigError, WeightsError
from mocodec.weights import file_digest, load_state_dict_file

TORCHVISION_DETECTORS = (
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
)


@dataclass(frozen=True)
class Detections:
    """The boxes found in one image: ``boxes`` K x 4 corners ``(x1, y1, x2, y2)`` in pixels,
    ``scores`` K confidences, ``labels`` K class indices into the detector's ``names``."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


class Detector(Protocol):
    names: tuple[str, ...]

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]: ...

    def identity(self) -> dict[str, Any]: ...


def weights_id(weights: str | Path | None, pretrained: bool) -> str:
    """What the outputs depend on besides the name: a local file's digest, else published or random weights."""
    return file_digest(weights).hex() if weights else ("pretrained" if pretrained else "random")


def import_ultralytics() -> ModuleType:
    """Import ultralytics (the optional ``[detect]`` extra) and undo its replacement of ``PIL.Image.open``.

    The one importer of ultralytics in mocodec: its import takes a second, paid when a YOLO model is built.
    On import, ultralytics swaps ``PIL.Image.open`` for a wrapper that, on any file Pillow
    cannot identify, tries to install and import ``pi-heif``: everywhere in the process a
    broken image then raises ModuleNotFoundError (or triggers a pip install) instead of
    ``UnidentifiedImageError``. mocodec reads images itself, so Pillow's own function is put back.
    """
    import ultralytics
    import ultralytics.utils.downloads
    import ultralytics.utils.patches

    Image.open = ultralytics.utils.patches._image_open
    return ultralytics


def ultralytics_weights_file(name: str) -> Path:
    """The checkpoint of a published ultralytics model (``yolo11n``, ``yolov8s.pt``).

    Looked for in the current folder, then in ultralytics' weights folder (``yolo settings``),
    else downloaded there once by ultralytics; offline: a WeightsError naming the file and the folder.
    """
    utils = import_ultralytics().utils
    assets = utils.downloads.GITHUB_ASSETS_NAMES
    file = name if name.endswith(".pt") else f"{name}.pt"
    target = Path(utils.SETTINGS["weights_dir"]) / file
    if not (Path(file).is_file() or target.is_file() or file in assets):
        examples = sorted(n.removesuffix(".pt") for n in assets if n.startswith(("yolo11", "yolov8")) and "-" not in n)
        raise WeightsError(
            f"ultralytics publishes no model '{name}'; detectors it does: {', '.join(examples)}, ...; or pass --weights PATH"
        )
    try:
        path = Path(utils.downloads.attempt_download_asset(file))
    except Exception as exc:  # ConnectionError offline; other network failures mean the same here
        raise WeightsError(
            f"cannot download {file} ({type(exc).__name__}; offline?); place it at {target}, or pass --weights PATH"
        ) from None
    if not path.is_file():
        raise WeightsError(f"ultralytics did not fetch {file}; place it at {target}, or pass --weights PATH")
    return path


def coco80_names() -> tuple[str, ...]:
    """COCO's 80 detection classes in the order YOLO models index them (ultralytics' coco.yaml)."""
    utils = import_ultralytics().utils
    names = utils.YAML.load(utils.ROOT / "cfg" / "datasets" / "coco.yaml")["names"]
    return tuple(names[i] for i in range(len(names)))


class UltralyticsDetector:
    """A YOLO model through ultralytics' own predictor (its letterbox, NMS and box scaling)."""

    def __init__(
        self,
        model: str = "yolo11n",
        weights: str | Path | None = None,
        pretrained: bool = True,
        conf: float = 0.001,
        iou: float = 0.7,
        max_det: int = 100,
        imgsz: int = 640,
        device: str | None = None,
    ) -> None:
        YOLO = import_ultralytics().YOLO

        architecture_only = model.endswith((".yaml", ".yml"))
        self.model_name, self.weights, self.pretrained = model, weights, pretrained and not architecture_only
        self.options = {"conf": conf, "iou": iou, "max_det": max_det, "imgsz": imgsz}
        self.device = device
        if weights is not None:
            source = Path(weights)
            if not source.is_file():
                raise WeightsError(f"detector weights {source} do not exist; check --weights")
        elif not self.pretrained:
            source = Path(model if architecture_only else f"{Path(model).stem}.yaml")
        else:
            source = ultralytics_weights_file(model)
        try:
            self.yolo = YOLO(str(source))
        except FileNotFoundError:
            raise ConfigError(f"ultralytics has no architecture {source.name}; use a model name such as yolo11n or yolov8s") from None
        except Exception as exc:  # a damaged or foreign file raises anything from pickle to KeyError
            raise WeightsError(f"{source} is not an ultralytics checkpoint ({type(exc).__name__}: {str(exc)[:100]})") from None
        if self.yolo.task != "detect":
            raise ConfigError(
                f"{source.name} is an ultralytics {self.yolo.task} model; the detection task needs a detect model (yolo11n, yolov8s, ...)"
            )
        names = tuple(self.yolo.names[i] for i in range(len(self.yolo.names)))
        if names == tuple(str(i) for i in range(80)):  # a model built from a yaml carries placeholders
            names = coco80_names()
        self.names = names

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        bgr = [np.ascontiguousarray(im[..., ::-1]) for im in images]  # ultralytics reads arrays as OpenCV does
        results = self.yolo.predict(bgr, verbose=False, device=self.device, **self.options)
        return [Detections(r.boxes.xyxy.cpu().numpy(), r.boxes.conf.cpu().numpy(), r.boxes.cls.cpu().numpy().astype(int)) for r in results]

    def identity(self) -> dict[str, Any]:
        return {"model": self.model_name, "weights": weights_id(self.weights, self.pretrained), **self.options}


class TorchvisionDetector:
    """A torchvision Faster R-CNN; ``conf`` and ``max_det`` set its box score threshold and box count."""

    def __init__(
        self,
        model: str = "fasterrcnn_resnet50_fpn",
        weights: str | Path | None = None,
        pretrained: bool = True,
        conf: float = 0.05,
        max_det: int = 100,
        device: str | None = None,
    ) -> None:
        torchvision = import_torchvision()
        if model not in TORCHVISION_DETECTORS:
            raise ConfigError(f"unknown torchvision detector '{model}'; known: {', '.join(TORCHVISION_DETECTORS)}")
        self.model_name, self.weights, self.pretrained = model, weights, pretrained
        self.options = {"conf": conf, "max_det": max_det}
        published = torchvision.models.get_model_weights(model).DEFAULT
        self.names = tuple(published.meta["categories"])
        net = torchvision.models.get_model(
            model,
            weights=None,
            weights_backbone=None,
            num_classes=len(self.names),
            box_score_thresh=conf,
            box_detections_per_img=max_det,
        )
        if weights is not None or pretrained:
            path = Path(weights) if weights is not None else torchvision_weights_file(model)
            try:
                net.load_state_dict(load_state_dict_file(path, what=f"{model} weights"))
            except RuntimeError as exc:
                raise WeightsError(f"{path} does not match {model} ({' '.join(str(exc).split())[:160]})") from None
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.net = net.eval().requires_grad_(False).to(self.device)

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        batch = [torch.from_numpy(im).permute(2, 0, 1).float().div(255).to(self.device) for im in images]
        return [
            Detections(out["boxes"].cpu().numpy(), out["scores"].cpu().numpy(), out["labels"].cpu().numpy().astype(int))
            for out in self.net(batch)
        ]

    def identity(self) -> dict[str, Any]:
        return {"model": self.model_name, "weights": weights_id(self.weights, self.pretrained), **self.options}


def create_detector(model: str = "yolo11n", weights: str | Path | None = None, **options: Any) -> Detector:
    """A torchvision detector for the names in :data:`TORCHVISION_DETECTORS`, else an ultralytics model."""
    if model in TORCHVISION_DETECTORS:
        options = {k: v for k, v in options.items() if k not in ("iou", "imgsz")}  # Faster R-CNN sets its own
        return TorchvisionDetector(model, weights, **options)
    return UltralyticsDetector(model, weights, **options)
