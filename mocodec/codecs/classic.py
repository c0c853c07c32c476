"""JPEG, WebP and AVIF through Pillow, behind the same compress/decompress contract as learned codecs.

So a sweep treats ``jpeg`` at quality 50 exactly like ``bmshj2018-hyperprior`` at quality 3:
``compress`` gives one string per image, ``decompress`` gives the image back, and the
bitstream container (and so the bpp) is the same for both.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from mocodec.codecs.base import CodecIdentity, check_input
from mocodec.codecs.registry import register_codec
from mocodec.errors import BitstreamError, ConfigError


def tensor_to_uint8(x: Tensor) -> np.ndarray:
    """3 x H x W float in [0, 1] -> H x W x 3 uint8 (round to nearest)."""
    return x.detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


class ClassicCodec(CodecIdentity, nn.Module):
    """A Pillow image format used as a codec; ``quality`` is the format's own 1-100 knob."""

    def __init__(self, name: str, pillow_format: str, quality: int, save_options: dict[str, Any] | None = None):
        super().__init__()
        if not 1 <= int(quality) <= 100:
            raise ConfigError(f"quality {quality} is out of range for {name}: use 1-100")
        self.pillow_format = pillow_format
        self.save_options = dict(save_options or {})
        self.set_identity(name, int(quality))

    def encode_one(self, x: Tensor) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(tensor_to_uint8(x)).save(buf, format=self.pillow_format, quality=self.quality, **self.save_options)
        return buf.getvalue()

    def decode_one(self, data: bytes, shape: tuple[int, int]) -> Tensor:
        try:
            with Image.open(io.BytesIO(data)) as img:
                # Compare sizes before load(): a forged payload must not make us allocate its claim.
                if img.size != (shape[1], shape[0]):
                    raise BitstreamError(
                        f"{self.codec_name} payload is {img.size[0]}x{img.size[1]}, header says {shape[1]}x{shape[0]}; the file is corrupted"
                    )
                img.load()
                rgb = np.array(img.convert("RGB"))
        except BitstreamError:
            raise
        except Exception as exc:  # Pillow raises many types for damaged data
            raise BitstreamError(f"{self.codec_name} payload does not decode ({type(exc).__name__}); the file is corrupted") from None
        return torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict[str, Any]:
        check_input(x)
        return {"strings": [[self.encode_one(img) for img in x]], "shape": tuple(x.shape[-2:])}

    @torch.no_grad()
    def decompress(self, strings: list, shape: tuple[int, int]) -> dict[str, Tensor]:
        return {"x_hat": torch.stack([self.decode_one(s, shape) for s in strings[0]])}

    def forward(self, x: Tensor) -> dict[str, Any]:
        """Code and decode (no gradient: classic codecs are baselines, not trainable)."""
        out = self.decompress(**self.compress(x))
        return {"x_hat": out["x_hat"].to(x), "likelihoods": {}}

    def update(self, *args: Any, **kwargs: Any) -> bool:  # nothing to build: same contract as learned codecs
        return False


# Classic codecs take their format's 1-100 quality knob; a sweep's default rate points span it.
CLASSIC_QUALITIES = range(1, 101)
CLASSIC_SWEEP = (5, 10, 20, 30, 50, 75, 95)


@register_codec(classic=True, qualities=CLASSIC_QUALITIES, sweep=CLASSIC_SWEEP)
def jpeg(quality: int = 75):
    return ClassicCodec("jpeg", "JPEG", quality)


@register_codec(classic=True, qualities=CLASSIC_QUALITIES, sweep=CLASSIC_SWEEP)
def webp(quality: int = 75):
    return ClassicCodec("webp", "WEBP", quality, {"method": 4})


@register_codec(classic=True, qualities=CLASSIC_QUALITIES, sweep=CLASSIC_SWEEP)
def avif(quality: int = 75):
    return ClassicCodec("avif", "AVIF", quality, {"speed": 6})
