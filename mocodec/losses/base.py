"""The distortion-term contract shared by every loss in :mod:`mocodec.losses`.

A distortion is an ``nn.Module``: ``forward(x_hat, x)`` is a differentiable scalar
loss (lower is better, the batch mean of :meth:`loss_per_image`); :meth:`score` is
the matching per-image quality figure, whose direction ``higher_is_better`` states
(PSNR and MS-SSIM: higher is better; LPIPS: lower is better).
"""

from __future__ import annotations

from torch import Tensor, nn

from mocodec.errors import ConfigError


class Distortion(nn.Module):
    higher_is_better: bool = True
    score_name: str = "score"

    def loss_per_image(self, x_hat: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError

    def score(self, x_hat: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x_hat: Tensor, x: Tensor) -> Tensor:
        return self.loss_per_image(x_hat, x).mean()


def check_pair(x_hat: Tensor, x: Tensor) -> None:
    if x_hat.shape != x.shape or x.dim() != 4:
        raise ConfigError(
            f"distortion inputs must be two N x C x H x W tensors of one shape, got {tuple(x_hat.shape)} and {tuple(x.shape)}"
        )
