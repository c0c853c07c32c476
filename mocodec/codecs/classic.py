"""The classical codecs -- JPEG, WebP, AVIF, and the field's anchors HEVC intra, JPEG 2000 and JPEG XL -- behind the
same compress/decompress contract as learned codecs.

So a sweep treats ``jpeg`` at quality 50 exactly like ``bmshj2018-hyperprior`` at quality 3:
``compress`` gives one string per image, ``decompress`` gives the image back, and the
bitstream container (and so the bpp) is the same for both. Every codec takes a quality knob
1-100 (higher is better); :data:`QUALITY_KNOBS` says what each turns, and the anchors' knobs
are chosen so their sweeps line up with CompressAI's published Kodak curves (docs/anchors.md).

JPEG, WebP, AVIF and JPEG 2000 (OpenJPEG) come with Pillow. HEVC (x265 through libheif, the
``pillow-heif`` package) and JPEG XL (libjxl, through ``imagecodecs``) are the ``anchors`` extra:
x265 is GPL-licensed, so mocodec itself does not depend on it; without the package a codec says
which one to install.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from mocodec.codecs.base import CodecIdentity, check_input
from mocodec.codecs.registry import register_codec
from mocodec.errors import BitstreamError, ConfigError


def tensor_to_uint8(x: Tensor) -> np.ndarray:
    """3 x H x W float in [0, 1] -> H x W x 3 uint8 (round to nearest), contiguous as the encoders read it.

    Interleaved by one converting copy into a fresh H x W x 3 array: a permuted view handed to
    Pillow is gathered by numpy's ``tobytes``, four times slower (measured on a 375 x 500 image).
    """
    rgb = torch.empty((*x.shape[-2:], 3), dtype=torch.uint8)
    rgb.copy_(x.detach().cpu().permute(1, 2, 0).clamp(0, 1).mul(255).round())
    return rgb.numpy()


def optional_module(module: str, codec: str, package: str) -> Any:
    """``module``, imported when a codec that needs it is built; missing: one line naming the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{codec} needs the {package} package: pip install 'mocodec[anchors]'") from None


class PillowFormat:
    """An image format Pillow writes and reads (with a plugin registered on first use, for HEIF)."""

    def __init__(self, pillow_format: str, options: Callable[[int], dict[str, Any]]) -> None:
        self.pillow_format, self.options = pillow_format, options

    def encode(self, rgb: np.ndarray, quality: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=self.pillow_format, **self.options(quality))
        return buf.getvalue()

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as img:
            # Compare sizes before load(): a forged payload must not make us allocate its claim.
            if img.size != (size[1], size[0]):
                raise BitstreamError(f"payload is {img.size[0]}x{img.size[1]}, header says {size[1]}x{size[0]}; the file is corrupted")
            img.load()
            return np.array(img.convert("RGB"))


class JpegXLFormat:
    """JPEG XL through libjxl (``imagecodecs``): ``quality`` is libjxl's quality setting (a Butteraugli distance)."""

    def __init__(self, codec: str) -> None:
        self.imagecodecs = optional_module("imagecodecs", codec, "imagecodecs")

    def encode(self, rgb: np.ndarray, quality: int) -> bytes:
        return bytes(self.imagecodecs.jpegxl_encode(rgb, level=quality, effort=7))

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        # Decoded into a buffer of the header's size: a payload of another size fails before allocating its claim.
        return self.imagecodecs.jpegxl_decode(data, out=np.empty((*size, 3), dtype=np.uint8))


class ClassicCodec(CodecIdentity, nn.Module):
    """A classical image format used as a codec; ``quality`` is its 1-100 knob (:data:`QUALITY_KNOBS`)."""

    def __init__(self, name: str, image_format: PillowFormat | JpegXLFormat, quality: int) -> None:
        super().__init__()
        if not 1 <= int(quality) <= 100:
            raise ConfigError(f"quality {quality} is out of range for {name}: use 1-100")
        self.image_format = image_format
        self.set_identity(name, int(quality))

    def encode_one(self, x: Tensor) -> bytes:
        return self.image_format.encode(tensor_to_uint8(x), self.quality)

    def decode_one(self, data: bytes, shape: tuple[int, int]) -> Tensor:
        try:
            rgb = self.image_format.decode(data, shape)
        except BitstreamError as exc:
            raise BitstreamError(f"{self.codec_name} {exc}") from None
        except Exception as exc:  # the decoders raise many types for damaged data
            raise BitstreamError(f"{self.codec_name} payload does not decode ({type(exc).__name__}); the file is corrupted") from None
        return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255)

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


# --------------------------------------------------------------------------- the knobs


def jpeg2000_ratio(quality: int) -> int:
    """JPEG 2000's compression ratio at ``quality``: 2·(101 − q):1, so quality q is ffmpeg's ``-compression_level
    101 − q``, what CompressAI's published curve was made with (its levels 5-95 are qualities 96-6)."""
    return 2 * (101 - quality)


def jpeg2000_options(quality: int) -> dict[str, Any]:
    # Irreversible 9/7 wavelet with the colour transform (mct): Pillow's default codes R, G and B apart,
    # which costs about 3 dB at equal rate on Kodak; ffmpeg's yuv444p input, as the published curve, decorrelates.
    return {"quality_mode": "rates", "quality_layers": [jpeg2000_ratio(quality)], "irreversible": True, "mct": 1}


def avif_444_options(quality: int) -> dict[str, Any]:
    # libavif tunes aom for SSIM by default; the published AV1 curve was made with --tune=psnr and --i444.
    return {"quality": quality, "speed": 6, "subsampling": "4:4:4", "advanced": [("tune", "psnr")]}


def hevc_qp(quality: int) -> int:
    """x265's constant QP at ``quality``: 51·(100 − q)/100 rounded (q 100: QP 0, lossless-like; q 1: QP 50)."""
    return round(51 * (100 - quality) / 100)


# x265 through libheif, set up as an objective-quality anchor: libheif's psycho-visual defaults (adaptive
# quantisation, psy-rd, psy-rdoq) trade PSNR for perceived detail; off, they cost 10-13 points less BD-rate
# against BPG on Kodak (docs/anchors.md). Constant QP, as BPG codes.
HEVC_PSNR = {"tune": "psnr", "x265:aq-mode": "0", "x265:psy-rd": "0", "x265:psy-rdoq": "0"}


def heif_options(chroma: int) -> Callable[[int], dict[str, Any]]:
    def options(quality: int) -> dict[str, Any]:
        return {"quality": quality, "chroma": chroma, "enc_params": {**HEVC_PSNR, "x265:qp": str(hevc_qp(quality))}}

    return options


def heif_format(codec: str, chroma: int) -> PillowFormat:
    optional_module("pillow_heif", codec, "pillow-heif").register_heif_opener()  # idempotent
    return PillowFormat("HEIF", heif_options(chroma))


QUALITY_KNOBS = {
    "jpeg": "Pillow/libjpeg quality",
    "webp": "libwebp quality (method 4)",
    "avif": "libavif quality (speed 6)",
    "avif-444": "libavif quality (speed 6), 4:4:4, aom tuned for PSNR (as CompressAI's published AV1 curve)",
    "jpeg2000": "OpenJPEG compression ratio 2·(101 − q):1 (CompressAI's published curve: ffmpeg -compression_level 101 − q)",
    "hevc": "x265 constant QP round(51·(100 − q)/100), 4:4:4, PSNR tuning (as BPG's published curve)",
    "hevc-420": "as hevc, 4:2:0",
    "jxl": "libjxl quality (effort 7)",
}

# Classic codecs take their format's 1-100 quality knob; a sweep's default rate points span it.
CLASSIC_QUALITIES = range(1, 101)
CLASSIC_SWEEP = (5, 10, 20, 30, 50, 75, 95)
JPEG2000_SWEEP = (6, 21, 41, 61, 76, 86, 91, 96)  # ratios 190:1 ... 10:1, points of the published curve
HEVC_SWEEP = (12, 22, 31, 41, 51, 61, 71)  # QP 45, 40, 35, 30, 25, 20, 15
JXL_SWEEP = (10, 25, 40, 55, 70, 85, 95)
AVIF_444_SWEEP = (15, 30, 45, 60, 75, 88)  # 0.15-2.6 bpp on Kodak, the published AV1 curve's range


@register_codec(classic=True, qualities=CLASSIC_QUALITIES, sweep=CLASSIC_SWEEP)
def jpeg(quality: int = 75):
    return ClassicCodec("jpeg", PillowFormat("JPEG", lambda q: {"quality": q}), quality)


@register_codec(classic=True, qualities=CLASSIC_QUALITIES, sweep=CLASSIC_SWEEP)
def webp(quality: int = 75):
    return ClassicCodec("webp", PillowFormat("WEBP", lambda q: {"quality": q, "method": 4}), quality)


@register_codec(classic=True, qualities=CLASSIC_QUALITIES, sweep=CLASSIC_SWEEP)
def avif(quality: int = 75):
    return ClassicCodec("avif", PillowFormat("AVIF", lambda q: {"quality": q, "speed": 6}), quality)


@register_codec(name="avif-444", classic=True, qualities=CLASSIC_QUALITIES, sweep=AVIF_444_SWEEP)
def avif_444(quality: int = 45):
    """AVIF set up as CompressAI's published AV1 curve was made: 4:4:4, aom tuned for PSNR (speed 6, not cpu-used 0)."""
    return ClassicCodec("avif-444", PillowFormat("AVIF", avif_444_options), quality)


@register_codec(classic=True, qualities=CLASSIC_QUALITIES, sweep=JPEG2000_SWEEP)
def jpeg2000(quality: int = 76):
    return ClassicCodec("jpeg2000", PillowFormat("JPEG2000", jpeg2000_options), quality)


@register_codec(classic=True, qualities=CLASSIC_QUALITIES, sweep=HEVC_SWEEP)
def hevc(quality: int = 41):
    """HEVC intra (x265 through libheif), 4:4:4: the configuration of CompressAI's published BPG curve."""
    return ClassicCodec("hevc", heif_format("hevc", 444), quality)


@register_codec(name="hevc-420", classic=True, qualities=CLASSIC_QUALITIES, sweep=HEVC_SWEEP)
def hevc_420(quality: int = 41):
    """HEVC intra, 4:2:0 chroma (what HEIF photographs use)."""
    return ClassicCodec("hevc-420", heif_format("hevc-420", 420), quality)


@register_codec(classic=True, qualities=CLASSIC_QUALITIES, sweep=JXL_SWEEP)
def jxl(quality: int = 75):
    """JPEG XL (libjxl through imagecodecs)."""
    return ClassicCodec("jxl", JpegXLFormat("jxl"), quality)
