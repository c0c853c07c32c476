"""Distortion terms (one registry, ``create_distortion``) and the rate-distortion loss."""

from __future__ import annotations

from typing import Any

from mocodec.losses import feature_similarity, lpips, ml_clipsim, mse, msssim  # noqa: F401  (registers the distortions)  # noqa: F401  (ml-featsim, lpips, ml-clipsim)
from mocodec.losses.base import Distortion
from mocodec.losses.mse import psnr
from mocodec.losses.msssim import msssim as ms_ssim
from mocodec.losses.rate_distortion import RateDistortionLoss, bpp_from_likelihoods
from mocodec.losses.registry import DISTORTIONS, register_distortion

__all__ = [
    "DISTORTIONS",
    "Distortion",
    "RateDistortionLoss",
    "bpp_from_likelihoods",
    "create_distortion",
    "list_distortions",
    "ms_ssim",
    "psnr",
    "register_distortion",
]


def create_distortion(name: str, **kwargs: Any) -> Distortion:
    return DISTORTIONS.create(name, **kwargs)


def list_distortions() -> list[str]:
    return DISTORTIONS.names()
