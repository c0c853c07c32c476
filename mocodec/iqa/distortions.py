"""Distortion families for PCMP: each a kind of degradation with several levels.

A family maps a reference (3 x H x W in [0, 1]) and one of its ``levels`` to a distorted
image of the same size; randomness (noise) comes only from the ``torch.Generator``
the caller passes, so a build is reproducible from its seed. Families are registered by
name (``FAMILIES``), three lines each; levels are the family's own parameter (codec
quality, blur σ in pixels, noise σ on the [0, 1] scale, resampling factor, contrast
factor, hue rotation in turns) and can be overridden: ``jpeg=10,30,50``. Defaults list
severities mildest first and codec qualities ascending (harshest first).

Codecs enter as families too: the classic ones by name; a learned codec only with real
weights (``ckpt:PATH`` or ``NAME@pretrained``), since offline a learned codec without
weights is a random network whose output says nothing about machine preference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from mocodec.codecs import CODECS, is_classic, load_codec, sweep_qualities
from mocodec.errors import ConfigError
from mocodec.evaluation.coding import CodecSpec, code_image, parse_qualities
from mocodec.registry import Registry

FAMILIES = Registry("distortion family")
Level = float


class DistortionFamily:
    """A named degradation at several ``levels``; ``distort(x, level, generator)`` applies one."""

    name: str
    levels: tuple[Level, ...]

    def distort(self, x: Tensor, level: Level, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def level_text(self, level: Level) -> str:
        """The level as written in file names and manifests (``2``, ``0.5``)."""
        return f"{level:g}"


class FunctionFamily(DistortionFamily):
    """A family defined by a pure function ``fn(x, level, generator)``."""

    def __init__(self, name: str, levels: Sequence[Level], fn: Callable[[Tensor, Level, torch.Generator], Tensor]):
        if not levels:
            raise ConfigError(f"distortion family {name} needs at least one level")
        self.name, self.levels, self.fn = name, tuple(float(v) for v in levels), fn

    def distort(self, x: Tensor, level: Level, generator: torch.Generator) -> Tensor:
        return self.fn(x, level, generator).clamp(0, 1)


class CodecFamily(DistortionFamily):
    """A codec at several qualities: the image is coded to a real bitstream file and decoded back."""

    def __init__(self, spec: CodecSpec, qualities: Sequence[int], name: str | None = None):
        self.spec, self.name = spec, name or spec.label or spec.name
        self.levels = tuple(float(q) for q in qualities)
        self._codecs: dict[int, Any] = {}

    def level_text(self, level: Level) -> str:
        return str(int(level))

    def distort(self, x: Tensor, level: Level, generator: torch.Generator) -> Tensor:
        quality = int(level)
        if quality not in self._codecs:  # one codec per quality, built once per build
            self._codecs[quality] = self.spec.load(quality)
        return code_image(self._codecs[quality], x, estimate=False).x_hat


# --------------------------------------------------------------------------- the degradations


def blur(x: Tensor, sigma: Level, generator: torch.Generator) -> Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel ±3σ)."""
    size = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(x, [size, size], [sigma, sigma])


def noise(x: Tensor, sigma: Level, generator: torch.Generator) -> Tensor:
    """Additive white Gaussian noise of standard deviation ``sigma`` on the [0, 1] scale."""
    return x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)


def resample(x: Tensor, factor: Level, generator: torch.Generator) -> Tensor:
    """Downsample by ``factor`` (antialiased bicubic), then upsample back to the original size."""
    h, w = x.shape[-2:]
    small = F.interpolate(x[None], size=(max(1, round(h / factor)), max(1, round(w / factor))), mode="bicubic", antialias=True)
    return F.interpolate(small, size=(h, w), mode="bicubic")[0]


def contrast(x: Tensor, factor: Level, generator: torch.Generator) -> Tensor:
    """Blend with the image's mean grey: ``factor`` < 1 lowers contrast (torchvision's adjust_contrast)."""
    return TF.adjust_contrast(x, factor)


def colour_shift(x: Tensor, turns: Level, generator: torch.Generator) -> Tensor:
    """Rotate every pixel's hue by ``turns`` of the colour circle (grey pixels are unchanged)."""
    return TF.adjust_hue(x, turns)


@FAMILIES.register(name="gaussian-blur")
def gaussian_blur(levels: Sequence[Level] = (0.5, 1.0, 2.0, 3.0, 5.0)) -> DistortionFamily:
    return FunctionFamily("gaussian-blur", levels, blur)


@FAMILIES.register(name="gaussian-noise")
def gaussian_noise(levels: Sequence[Level] = (0.02, 0.04, 0.08, 0.12, 0.2)) -> DistortionFamily:
    return FunctionFamily("gaussian-noise", levels, noise)


@FAMILIES.register(name="resample")
def downsample_upsample(levels: Sequence[Level] = (2, 3, 4, 6, 8)) -> DistortionFamily:
    return FunctionFamily("resample", levels, resample)


@FAMILIES.register(name="contrast")
def contrast_change(levels: Sequence[Level] = (0.9, 0.75, 0.6, 0.45, 0.3)) -> DistortionFamily:
    return FunctionFamily("contrast", levels, contrast)


@FAMILIES.register(name="colour-shift")
def hue_shift(levels: Sequence[Level] = (0.02, 0.04, 0.08, 0.12, 0.16)) -> DistortionFamily:
    return FunctionFamily("colour-shift", levels, colour_shift)


@FAMILIES.register(codec=True)
def jpeg(levels: Sequence[int] = (5, 10, 20, 40, 70)) -> DistortionFamily:
    return CodecFamily(CodecSpec("jpeg", label="jpeg"), levels)


@FAMILIES.register(codec=True)
def webp(levels: Sequence[int] = (5, 10, 20, 40, 70)) -> DistortionFamily:
    return CodecFamily(CodecSpec("webp", label="webp"), levels)


@FAMILIES.register(codec=True)
def avif(levels: Sequence[int] = (10, 25, 40, 55, 70)) -> DistortionFamily:
    return CodecFamily(CodecSpec("avif", label="avif"), levels)


DEFAULT_FAMILIES = ("jpeg", "webp", "avif", "gaussian-blur", "gaussian-noise", "resample", "contrast", "colour-shift")
LEARNED_POINTS = 4  # a learned codec's default levels: four of its qualities, lowest to highest


def _parse_levels(text: str, spec: str) -> list[float]:
    try:
        levels = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        levels = []
    if not levels or not all(math.isfinite(v) and v > 0 for v in levels):
        raise ConfigError(f"cannot read the levels of '{spec}'; write positive numbers, e.g. gaussian-blur=0.5,1,2")
    return levels


def create_family(spec: str) -> DistortionFamily:
    """A family from its command-line spelling: ``NAME``, ``NAME=LEVELS``, ``CODEC@pretrained=1-8`` or ``ckpt:PATH``.

    ``NAME`` is a registered family (``FAMILIES.names()``) or any codec of the codec
    registry; ``LEVELS`` overrides the default levels (qualities for codecs: ``1-8``, ``10,30``).
    """
    name, _, levels_text = spec.partition("=") if not spec.startswith("ckpt:") else (spec, "", "")
    if name in FAMILIES:
        if not levels_text:
            return FAMILIES.create(name)
        codec_levels = FAMILIES.meta(name).get("codec", False)  # qualities are integers, ranges allowed
        levels = parse_qualities(levels_text) if codec_levels else _parse_levels(levels_text, spec)
        return FAMILIES.create(name, levels=levels)
    codec = CodecSpec.parse(name)
    if codec.name not in CODECS:
        known = ", ".join(FAMILIES.names())
        raise ConfigError(f"unknown distortion family '{name}'; known families: {known}, or any codec name (`mocodec list`)")
    if is_classic(codec.name):
        return CodecFamily(codec, parse_qualities(levels_text) if levels_text else (10, 30, 50, 70), name=codec.name)
    if codec.checkpoint is not None:  # a checkpoint fixes the weights, and so the one quality it was trained for
        quality = load_codec(codec.name, checkpoint=codec.checkpoint).quality
        return CodecFamily(codec, [quality], name=codec.label)
    if not codec.pretrained:
        raise ConfigError(
            f"learned codec '{codec.name}' has random weights offline; give ckpt:PATH (a trained checkpoint) "
            f"or {codec.name}@pretrained (published weights)"
        )
    levels = parse_qualities(levels_text) if levels_text else sweep_qualities(codec.name, LEARNED_POINTS)
    return CodecFamily(codec, levels, name=codec.name)
