"""``eval-rd``: rate-distortion of one codec over qualities on an image folder."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from mocodec.data.io import list_images
from mocodec.errors import ConfigError
from mocodec.evaluation.coding import CodecSpec, code_image, iter_images, quantize_8bit
from mocodec.evaluation.results import summarise
from mocodec.losses.msssim import msssim, window_for
from mocodec.losses.mse import psnr

RD_METRICS = ("bpp", "bpp-estimated", "psnr-rgb", "ms-ssim", "encoding_time", "decoding_time")


def image_record(path: Path, quality: int, x: torch.Tensor, coded) -> dict[str, Any]:
    """Per-image figures; PSNR/MS-SSIM on the decoded image as an 8-bit PNG would hold it."""
    x_hat = quantize_8bit(coded.x_hat).unsqueeze(0)
    ref = x.unsqueeze(0)
    h, w = x.shape[-2:]
    return {
        "image": path.name,
        "quality": quality,
        "bytes": coded.num_bytes,
        "bpp": coded.bpp,
        "bpp-estimated": coded.bpp_estimated,
        "psnr-rgb": float(psnr(x_hat, ref)),
        "ms-ssim": float(msssim(x_hat, ref)) if min(h, w) > 32 else None,
        "msssim_window": window_for(h, w) if min(h, w) > 32 else None,
        "encoding_time": coded.encoding_time,
        "decoding_time": coded.decoding_time,
    }


def eval_rd(
    spec: CodecSpec,
    qualities: Iterable[int],
    dataset: str | Path,
    progress: Callable[[Iterable, int, str], Iterable] | None = None,
) -> dict[str, Any]:
    """Encode and decode every image of ``dataset`` at each quality; CompressAI-schema results."""
    paths = list_images(dataset)
    if not paths:
        raise ConfigError(f"dataset folder {dataset} holds no images (.png/.jpg/.webp/...)")
    torch.set_grad_enabled(False)
    records: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    for quality in qualities:
        codec = spec.load(quality)
        items = iter_images(paths, skipped)
        if progress is not None:
            items = progress(items, len(paths), f"{spec.label} q{quality}")
        for path, x, info in items:
            records.append(image_record(path, quality, x, code_image(codec, x, info)))
    description = f"mocodec eval-rd of {spec.label} on {Path(dataset).name} ({platform.machine()}, torch {torch.__version__})"
    return summarise(spec.label, description, records, RD_METRICS,
                     {"skipped": sorted(set(skipped))})
