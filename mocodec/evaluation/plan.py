"""Which codecs a sweep codes at which rates: curves of rate points.

A *curve* is one codec at several rate points: a registry codec at several qualities
(``jpeg`` at 10, 30, 50; ``bmshj2018-hyperprior@pretrained`` at 1-8), or trained
checkpoints, one point each: a checkpoint holds one codec, so it is one rate point,
and a series of them is a curve (``mse=ckpt:runs/mse/*.ckpt``). Command line syntax::

    --codecs jpeg,webp,avif,ckpt:runs/x.ckpt,mse=ckpt:runs/mse/*.ckpt,bmshj2018-hyperprior:zoo/*.pth
    --qualities jpeg=10,30,50 --qualities classic=5-95 --qualities 1-8

A ``LABEL=`` prefix names a curve (default: the codec name, or the checkpoint's file
stem). ``--qualities [KEY=]LIST`` is looked up by the curve's label, then its codec
name, then its family (``classic`` for JPEG/WebP/AVIF, ``learned``), then a bare LIST;
the default is the codec's own (:func:`mocodec.codecs.sweep_qualities`: every quality a
learned codec has, a classic codec's declared sweep). Checkpoint curves take their points from
their files (the quality recorded in each), never from ``--qualities``.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mocodec.codecs import sweep_qualities
from mocodec.errors import ConfigError
from mocodec.evaluation.coding import CodecSpec, parse_qualities

_LABEL = re.compile(r"([\w.+-]+)=(.+)")  # "LABEL=codec"; a label has no ':' or '/', so paths never match


@dataclass(frozen=True)
class RatePoint:
    """One codec configuration of a curve; ``quality`` None: the one recorded in the checkpoint."""

    curve: str
    point: str  # the point's key within its curve: the quality, or the checkpoint's file stem
    spec: CodecSpec
    quality: int | None

    def load(self) -> nn.Module:
        return self.spec.load(self.quality if self.quality is not None else 1)


@dataclass(frozen=True)
class Curve:
    label: str
    codec: str  # as given on the command line
    points: tuple[RatePoint, ...]


def point_identity(codec: nn.Module) -> dict[str, Any]:
    """What a point's records depend on: a point whose identity changed is recomputed."""
    return {"codec": codec.codec_name, "quality": int(codec.quality), "weights": codec.weights_id.hex()}


def _split_label(text: str) -> tuple[str | None, str]:
    m = _LABEL.fullmatch(text.strip())
    return (m.group(1), m.group(2)) if m else (None, text.strip())


def _family(spec: CodecSpec) -> str:
    return "classic" if spec.classic else "learned"


def _checkpoint_pattern(body: str) -> tuple[str, str | None] | None:
    """``(glob pattern, codec name or None)`` when ``body`` names checkpoint files: ``ckpt:GLOB`` or ``NAME:GLOB``."""
    if body.startswith("ckpt:"):
        return body[len("ckpt:") :], None
    if ":" in body and not body.endswith("@pretrained"):
        name, pattern = body.split(":", 1)
        return pattern, name
    return None


def _checkpoint_curve(label: str | None, pattern: str, name: str | None, by_key: dict) -> tuple[str, tuple[RatePoint, ...]]:
    """The label and points of a checkpoint curve: one point per file, in file-name order."""
    paths = sorted(glob.glob(pattern)) or [pattern]  # a missing file fails in CodecSpec.parse, clearly
    specs = [CodecSpec.parse(f"{name}:{p}" if name else f"ckpt:{p}") for p in paths]
    label = label or (specs[0].label if len(specs) == 1 else Path(pattern).parent.name or specs[0].name)
    if label.lower() in by_key:
        raise ConfigError(
            f"checkpoint curve '{label}' takes its rate points from its files (one point per checkpoint); drop --qualities {label}=..."
        )
    return label, tuple(RatePoint(label, Path(p).stem, s, None) for p, s in zip(paths, specs))


def plan_curves(codecs: Sequence[str], qualities: Sequence[str] = ()) -> list[Curve]:
    """Curves from ``--codecs`` texts (comma-separated, repeatable) and ``--qualities`` texts."""
    texts = [t for item in codecs for t in (s.strip() for s in item.split(",")) if t]
    if not texts:
        raise ConfigError("no codecs given; pass e.g. --codecs jpeg,webp")
    by_key: dict[str | None, list[int]] = {}
    for item in qualities:
        key, values = _split_label(item)
        by_key[key.lower() if key else None] = parse_qualities(values)
    curves: list[Curve] = []
    for text in texts:
        label, body = _split_label(text)
        checkpoint = _checkpoint_pattern(body)
        if checkpoint is not None:
            label, points = _checkpoint_curve(label, *checkpoint, by_key)
        else:
            spec = CodecSpec.parse(body)
            label = label or spec.label
            keys = (label.lower(), spec.name.lower(), _family(spec), None)
            chosen = next((by_key[k] for k in keys if k in by_key), None)
            qs = chosen or sweep_qualities(spec.name)
            points = tuple(RatePoint(label, str(q), spec, q) for q in qs)
        if any(c.label == label for c in curves):
            raise ConfigError(f"two curves are labelled '{label}'; name them, e.g. --codecs a={text}")
        curves.append(Curve(label, text, points))
    known = {c.label.lower() for c in curves} | {p.spec.name.lower() for c in curves for p in c.points} | {"classic", "learned", None}
    stray = [k for k in by_key if k not in known]
    if stray:
        raise ConfigError(f"--qualities {stray[0]}=... matches no codec; use a curve label, a codec name, 'classic' or 'learned'")
    return curves


def load_codecs(curves: Sequence[Curve], device: str | torch.device = "cpu") -> dict[RatePoint, nn.Module]:
    """Every point's codec, loaded before any image is touched so a bad checkpoint fails first.

    Learned codecs' transforms run on ``device`` (their entropy coding always runs on the CPU).
    """
    return {p: p.load().to(device) for c in curves for p in c.points}


__all__ = ["Curve", "RatePoint", "plan_curves", "load_codecs", "point_identity"]
