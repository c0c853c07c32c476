"""Reading and writing images as float tensors in [0, 1], with every odd mode handled explicitly.

Codecs work on 3-channel RGB. ``read_image`` converts whatever Pillow opens to that
and records what it changed in an :class:`ImageInfo`, so ``write_image`` (and the
bitstream container) can give back the same kind of image:

- grayscale (``L``, ``1``, 16-bit ``I;16``): replicated to RGB for coding, written back as one channel;
- alpha (``RGBA``, ``LA``, palette with transparency): colour is coded lossily, alpha kept losslessly;
- 16-bit grayscale: read at full precision, written back as 16-bit;
- 16-bit RGB PNG: Pillow reads it as 8-bit; that is warned about, never silent;
- CMYK / YCbCr / palette: converted to RGB; EXIF orientation applied; animations: first frame, warned;
- truncated, unreadable and over-large images (``max_pixels``, Pillow's bomb guard): ImageReadError.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from mocodec.errors import ConfigError, ImageReadError
from mocodec.files import atomic_write_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".gif", ".avif")
DEFAULT_MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)


@dataclass(frozen=True)
class ImageInfo:
    """What the original file held, beyond the RGB tensor the codecs see."""

    channels: int = 3  # 1 (grayscale) or 3 (colour); alpha is separate
    bitdepth: int = 8  # 8 or 16
    alpha: np.ndarray | None = None  # H x W uint8/uint16, kept losslessly


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


def open_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open and fully load ``path`` with Pillow; every failure becomes an ImageReadError."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"input image {path} does not exist; check the path")
    if path.is_dir():
        raise ImageReadError(f"input {path} is a directory, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            if img.width * img.height > max_pixels:
                raise ImageReadError(
                    f"{path} has {img.width}x{img.height} = {img.width * img.height} pixels, "
                    f"over the limit of {max_pixels}; raise --max-pixels if you trust this file"
                )
            if _is_16bit_rgb_png(img):  # must be checked before load(), which clears img.tile
                warnings.warn(f"{path}: 16-bit RGB PNG is read by Pillow at 8 bits per channel", stacklevel=2)
            if getattr(img, "n_frames", 1) > 1:
                warnings.warn(f"{path} is animated ({img.n_frames} frames); using the first frame", stacklevel=2)
                img.seek(0)
            img.load()
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{path} looks like a decompression bomb ({_first_line(exc)}); raise --max-pixels if you trust it") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path} is not an image Pillow can read; give a PNG/JPEG/WebP/... file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path} is truncated or corrupted ({_first_line(exc)}); re-export the image") from None
    return img


def _is_16bit_rgb_png(img: Image.Image) -> bool:
    return img.format == "PNG" and img.mode in ("RGB", "RGBA") and any(t.args in ("RGB;16B", "RGBA;16B") for t in img.tile or [])


def pil_to_tensor(img: Image.Image, name: str = "image") -> tuple[torch.Tensor, ImageInfo]:
    """Convert a loaded PIL image to a 3xHxW float tensor in [0, 1] plus its ImageInfo."""
    with contextlib.suppress(Exception):  # a malformed EXIF block must not make the pixels unreadable
        img = ImageOps.exif_transpose(img)
    alpha = None
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = np.array(img.getchannel("A"), dtype=np.uint8)
        img = img.convert("LA" if img.mode in ("LA", "La") else "RGB").convert("L" if img.mode in ("LA", "La") else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.array(img).astype(np.float64)
        if arr.max(initial=0) > 65535 or arr.min(initial=0) < 0:
            raise ImageReadError(f"{name}: 32-bit integer pixels outside 0..65535 are not supported; save as 8/16-bit")
        gray = torch.from_numpy(arr / 65535.0).float()
        return gray.expand(3, *gray.shape).contiguous(), ImageInfo(channels=1, bitdepth=16, alpha=alpha)
    if img.mode == "F":
        raise ImageReadError(f"{name}: floating-point images are not supported; save as 8/16-bit PNG")
    if img.mode in ("1", "L"):
        gray = torch.from_numpy(np.array(img.convert("L"), dtype=np.float32) / 255.0)
        return gray.expand(3, *gray.shape).contiguous(), ImageInfo(channels=1, bitdepth=8, alpha=alpha)
    rgb = np.array(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), ImageInfo(channels=3, bitdepth=8, alpha=alpha)


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[torch.Tensor, ImageInfo]:
    """Read ``path`` as a 3xHxW float tensor in [0, 1] and the info needed to write it back alike."""
    return pil_to_tensor(open_image(path, max_pixels), name=str(path))


def tensor_to_pil(x: torch.Tensor, info: ImageInfo | None = None) -> Image.Image:
    """Inverse of :func:`pil_to_tensor` (up to quantisation): 3xHxW in [0, 1] -> PIL image."""
    info = info or ImageInfo()
    x = x.detach().float().clamp(0, 1).cpu()
    if info.channels == 1:
        gray = x.mean(0).numpy()
        if info.bitdepth == 16:
            img = Image.fromarray(np.round(gray * 65535).astype(np.uint16))
        else:
            img = Image.fromarray(np.round(gray * 255).astype(np.uint8))
    else:
        img = Image.fromarray(np.round(x.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    if info.alpha is not None:
        if img.mode == "I;16":  # Pillow has no 16-bit gray + alpha mode: alpha wins, gray drops to 8 bits
            img = Image.fromarray((np.array(img) >> 8).astype(np.uint8))
        img = img.convert("LA" if img.mode == "L" else "RGBA")
        img.putalpha(Image.fromarray(info.alpha))
    return img


def write_image(path: str | os.PathLike, x: torch.Tensor, info: ImageInfo | None = None) -> None:
    """Write a 3xHxW [0, 1] tensor as an image file (format from the extension; PNG is lossless)."""
    path = Path(path)
    buf = io.BytesIO()
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageReadError(f"cannot tell the image format of {path}; use a .png (lossless) file name")
    tensor_to_pil(x, info).save(buf, format=fmt)
    atomic_write_bytes(path, buf.getvalue())


def list_images(root: str | os.PathLike) -> list[Path]:
    """Every image file under ``root`` (recursively), sorted for reproducibility."""
    root = Path(root)
    if not root.is_dir():
        raise ImageReadError(f"dataset folder {root} does not exist or is not a directory")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def image_present(path: Path, reason: str, missing: list[tuple[str, str]] | None) -> bool:
    """Whether a dataset's listed image exists; if not, record it in ``missing`` or, without a list, raise.

    Dataset loaders share this rule: an image that the annotations name but the folder lacks is
    skipped and counted (``missing`` given), or is a one-line error (``missing=None``).
    """
    if path.is_file():
        return True
    if missing is None:
        raise ConfigError(f"image {path} is {reason}; place it there")
    missing.append((str(path), reason))
    return False
