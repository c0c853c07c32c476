"""Coding images through the real container, timed: the one loop every sweep builds on.

bpp always counts the whole file (header, CRC and any alpha plane included), so the
figures are what a user's disk would see; the estimate from the likelihoods is
reported beside it for learned codecs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mocodec import bitstream
from mocodec.codecs import CODEC_KEY, is_classic, load_codec
from mocodec.codecs.base import device_of
from mocodec.data.io import ImageInfo
from mocodec.errors import ConfigError
from mocodec.losses.rate_distortion import bpp_from_likelihoods
from mocodec.weights import load_checkpoint


@dataclass(frozen=True)
class CodecSpec:
    """A codec to sweep: registry name, or ``ckpt:PATH`` (a trained checkpoint), plus a label."""

    name: str
    checkpoint: str | None = None
    pretrained: bool = False
    label: str = ""

    @classmethod
    def parse(cls, text: str, default_learned: str = "bmshj2018-hyperprior") -> CodecSpec:
        """``jpeg`` | ``bmshj2018-hyperprior`` | ``NAME@pretrained`` | ``ckpt:PATH`` | ``NAME:PATH``."""
        text = text.strip()
        if text.startswith("ckpt:"):
            path = text[5:]
            return cls(_codec_name_of_checkpoint(path, default_learned), checkpoint=path, label=Path(path).stem)
        if text.endswith("@pretrained"):
            name = text[: -len("@pretrained")]
            return cls(name, pretrained=True, label=f"{name} (pretrained)")
        if ":" in text:
            name, path = text.split(":", 1)
            return cls(name, checkpoint=path, label=f"{name}:{Path(path).stem}")
        return cls(text, label=text)

    def load(self, quality: int) -> nn.Module:
        return load_codec(self.name, quality, checkpoint=self.checkpoint, pretrained=self.pretrained)

    @property
    def classic(self) -> bool:
        return is_classic(self.name)


def _codec_name_of_checkpoint(path: str, default: str) -> str:
    recorded = load_checkpoint(path).get(CODEC_KEY)
    return recorded["name"] if isinstance(recorded, dict) else default


def parse_qualities(text: str | Iterable[int]) -> list[int]:
    """``"1-8"``, ``"10,30,50"``, ``"1-3,6"`` or a list of ints -> sorted unique qualities."""
    if not isinstance(text, str):
        return sorted({int(q) for q in text})
    out: set[int] = set()
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ConfigError(f"cannot read qualities '{text}'; write e.g. 1-8 or 10,30,50") from None
    if not out:
        raise ConfigError(f"no qualities in '{text}'; write e.g. 1-8 or 10,30,50")
    return sorted(out)


@dataclass
class CodedImage:
    x_hat: Tensor  # 3 x H x W in [0, 1], as decoded from the file
    num_bytes: int
    bpp: float  # from the file size
    bpp_estimated: float | None  # from the likelihoods (learned codecs)
    encoding_time: float
    decoding_time: float


def levels_8bit(x: Tensor) -> Tensor:
    """The 8-bit levels (0-255, as floats) a PNG of the decoded output would hold."""
    return x.clamp(0, 1).mul(255).round()


def quantize_8bit(x: Tensor) -> Tensor:
    """The image a PNG of the decoded output would hold."""
    return levels_8bit(x).div(255)


@torch.no_grad()
def code_image(codec: nn.Module, x: Tensor, info: ImageInfo | None = None, estimate: bool = True) -> CodedImage:
    """Encode ``x`` (3 x H x W) to a full container and decode it back, timing both."""
    t0 = time.perf_counter()
    data = bitstream.encode(codec, x, info)
    t1 = time.perf_counter()
    x_hat, _ = bitstream.decode(codec, data)
    t2 = time.perf_counter()
    num_pixels = x.shape[-2] * x.shape[-1]
    est = None
    if estimate and hasattr(codec, "entropy_bottleneck"):
        est = float(bpp_from_likelihoods(codec(x.unsqueeze(0).to(device_of(codec)))["likelihoods"], num_pixels))
    return CodedImage(x_hat, len(data), 8 * len(data) / num_pixels, est, t1 - t0, t2 - t1)
