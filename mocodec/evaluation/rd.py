"""``eval-rd``: rate-distortion of one codec over qualities on an image folder.

Per-image records are keyed by (quality, image path relative to the dataset folder)
and sorted by that key, so a run split into shards (:mod:`mocodec.evaluation.distributed`)
merges into the very file a single process writes.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import torch

from mocodec.data.io import list_images
from mocodec.errors import ConfigError
from mocodec.evaluation.coding import CodecSpec, code_image, iter_images, quantize_8bit
from mocodec.evaluation.results import summarise
from mocodec.losses.msssim import msssim, window_for
from mocodec.losses.mse import psnr

if TYPE_CHECKING:
    from mocodec.evaluation.distributed import Shard

RD_METRICS = ("bpp", "bpp-estimated", "psnr-rgb", "ms-ssim", "encoding_time", "decoding_time")


def merge_key(record: dict[str, Any]) -> tuple[int, str]:
    """What identifies a per-image record, and orders the records of a results file."""
    return record["quality"], record["image"]


def image_record(path: Path, quality: int, x: torch.Tensor, coded, root: Path | None = None) -> dict[str, Any]:
    """Per-image figures; PSNR/MS-SSIM on the decoded image as an 8-bit PNG would hold it.

    ``image`` is the path relative to ``root`` (the dataset folder), or the file name.
    """
    x_hat = quantize_8bit(coded.x_hat).unsqueeze(0)
    ref = x.unsqueeze(0)
    h, w = x.shape[-2:]
    return {
        "image": path.relative_to(root).as_posix() if root is not None else path.name,
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
    shard: "Shard | None" = None,
) -> dict[str, Any]:
    """Encode and decode every image of ``dataset`` (or of its ``shard``) at each quality; CompressAI-schema results.

    A shard's results carry ``"shard": {"index", "count"}`` for ``mocodec merge``.
    """
    root = Path(dataset)
    paths = list_images(root)
    if not paths:
        raise ConfigError(f"dataset folder {dataset} holds no images (.png/.jpg/.webp/...)")
    if shard is not None:
        paths = shard.select(paths, key=lambda p: p.relative_to(root).as_posix())
    records: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    for quality in qualities:
        codec = spec.load(quality)
        items = iter_images(paths, skipped)
        if progress is not None:
            items = progress(items, len(paths), f"{spec.label} q{quality}")
        for path, x, info in items:
            with torch.no_grad():
                records.append(image_record(path, quality, x, code_image(codec, x, info), root))
    records.sort(key=merge_key)
    description = f"mocodec eval-rd of {spec.label} on {root.name} ({platform.machine()}, torch {torch.__version__})"
    extra: dict[str, Any] = {"skipped": sorted(set(skipped))}
    if shard is not None:
        extra["shard"] = shard.as_dict()
    return summarise(spec.label, description, records, RD_METRICS, extra)


def eval_rd_shard(
    spec: CodecSpec,
    qualities: Iterable[int],
    dataset: str | Path,
    shard: "Shard",
    out: str | Path,
    progress: Callable[[Iterable, int, str], Iterable] | None = None,
) -> None:
    """One shard of a split ``eval-rd`` run, written to ``out`` (a job of ``run_sharded``; progress on shard 0 only)."""
    from mocodec.evaluation.results import write_results

    write_results(out, eval_rd(spec, list(qualities), dataset, progress if shard.index == 0 else None, shard))
