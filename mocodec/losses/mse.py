"""Mean squared error on CompressAI's scale, and PSNR.

The loss is ``255² · MSE`` on [0, 1] images, as CompressAI's ``RateDistortionLoss``,
so CompressAI's λ table (0.0018 ... 0.18 for qualities 1 ... 8) means the same here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mocodec.losses.base import Distortion, check_pair
from mocodec.losses.registry import register_distortion


def mse_per_image(x_hat: Tensor, x: Tensor) -> Tensor:
    return (x_hat - x).pow(2).flatten(1).mean(1)


def psnr(x_hat: Tensor, x: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image PSNR in dB (identical images: +inf)."""
    check_pair(x_hat, x)
    return 10 * torch.log10(data_range**2 / mse_per_image(x_hat.float(), x.float()))


class MSE(Distortion):
    higher_is_better = True  # of the score, PSNR
    score_name = "psnr"

    def loss_per_image(self, x_hat: Tensor, x: Tensor) -> Tensor:
        check_pair(x_hat, x)
        return 255.0**2 * mse_per_image(x_hat, x)

    def score(self, x_hat: Tensor, x: Tensor) -> Tensor:
        return psnr(x_hat, x)


@register_distortion
def mse() -> MSE:
    return MSE()
