"""Metric declarations, and the fidelity metrics every sweep can record.

A :class:`Metric` is declared once, beside the code that computes it (the coding metrics
here, each task's metrics in its task module), and everything downstream reads the
declaration instead of parallel tables: the results file stores it, summaries aggregate
by it, figures take their axis labels and arrows from it, BD tables their direction, and
merges need nothing else (as torchmetrics' and pyiqa's metric metadata).

Fidelity metrics compare the decoded 8-bit image with the original; a sweep records the
ones it is asked for (``FIDELITY``), beside what every record holds (bytes, bpp, coding
times). ``bpp-estimated`` is the likelihood estimate of a learned codec (one more forward
pass; ``None`` for classic codecs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from mocodec.errors import ConfigError
from mocodec.evaluation.msssim import MSSSIMReference
from mocodec.losses.mse import psnr
from mocodec.losses.msssim import window_for

RATE = "bpp"


@dataclass(frozen=True)
class Metric:
    """What a results file, a summary, a figure and a BD table need to know about a metric.

    Args:
        name: key in per-image records and per-point results (``psnr-rgb``, ``top1``).
        label: axis label with units.
        higher_is_better: the direction of improvement.
        reference: measured on the originals only (e.g. the judge's confidence): the same at
            every rate, so tables print it and rate curves leave it out.
        per_image: the dataset value is the mean of per-image values, so an interval over
            images is exact; False for dataset-level statistics (mAP, F1).
    """

    name: str
    label: str
    higher_is_better: bool = True
    reference: bool = False
    per_image: bool = True

    def meta(self) -> dict[str, Any]:
        """The declaration as a results file stores it."""
        return {"label": self.label, "higher_is_better": self.higher_is_better, "reference": self.reference, "per_image": self.per_image}


def mean(values: Iterable[float | bool | None]) -> float | None:
    """Mean of the values that are not None (None if there are none); any infinite value makes it infinite."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    finite = [v for v in vals if math.isfinite(v)]
    return sum(finite) / len(finite) if len(finite) == len(vals) else math.inf


# --------------------------------------------------------------------------- what every record holds

CODING: tuple[Metric, ...] = (
    Metric(RATE, "rate (bits per pixel, file size)", higher_is_better=False),
    Metric("encoding_time", "encoding time [s]", higher_is_better=False),
    Metric("decoding_time", "decoding time [s]", higher_is_better=False),
)

# --------------------------------------------------------------------------- fidelity

FIDELITY: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("psnr-rgb", "PSNR (RGB) [dB]"),
        Metric("ms-ssim", "MS-SSIM"),
        Metric("bpp-estimated", "rate estimated from the likelihoods [bpp]", higher_is_better=False),
    )
}
MSSSIM_MIN_SIDE = 33  # 5-scale MS-SSIM with the smallest (3 px) window


def parse_fidelity(names: str | Sequence[str]) -> tuple[str, ...]:
    """``"psnr-rgb,ms-ssim"`` (or ``none``) or a list -> the names in ``FIDELITY`` order; unknown names are one-line errors."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if items == ["none"]:
        return ()
    unknown = [n for n in items if n not in FIDELITY]
    if unknown:
        raise ConfigError(f"unknown fidelity metric '{unknown[0]}'; choose from {', '.join(FIDELITY)}, or none")
    return tuple(n for n in FIDELITY if n in items)


class FidelityMeter:
    """The fidelity metrics of one original's decoded versions; what depends on the original alone is computed once.

    MS-SSIM takes the largest window that fits (``msssim_window`` records it) and is computed
    by :mod:`mocodec.evaluation.msssim` (pytorch_msssim's values, the original's half reused at
    every rate point); images with a side under 33 px get None.
    """

    def __init__(self, original: Tensor, metrics: Sequence[str]) -> None:
        self.original, self.metrics = original, tuple(metrics)
        h, w = original.shape[-2:]
        fits = min(h, w) >= MSSSIM_MIN_SIDE
        self.window = window_for(h, w) if fits else None
        self.msssim = MSSSIMReference(original[None]) if "ms-ssim" in self.metrics and fits else None

    def measure(self, decoded: Tensor) -> dict[str, Any]:
        """The metrics of one decoded 8-bit image (3 x H x W in [0, 1]) against the original."""
        record: dict[str, Any] = {}
        if "psnr-rgb" in self.metrics:
            record["psnr-rgb"] = float(psnr(decoded[None], self.original[None])[0])
        if "ms-ssim" in self.metrics:
            record["ms-ssim"] = float(self.msssim.score(decoded[None])[0]) if self.msssim is not None else None
            record["msssim_window"] = self.window
        return record


def metric_table(metrics: Iterable[Metric]) -> dict[str, dict[str, Any]]:
    """``{name: meta}`` of declarations, in order (what a results file's ``metrics`` holds)."""
    return {m.name: m.meta() for m in metrics}


def direction(meta: Mapping[str, Any] | None, default: bool = True) -> bool:
    """higher_is_better of a stored declaration (``default`` when the file does not say)."""
    return bool(meta.get("higher_is_better", default)) if meta else default


__all__ = ["Metric", "mean", "CODING", "FIDELITY", "RATE", "parse_fidelity", "FidelityMeter", "metric_table", "direction"]
