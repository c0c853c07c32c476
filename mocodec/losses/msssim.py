"""MS-SSIM (Wang et al. 2003) through ``pytorch_msssim``; the loss is ``1 − MS-SSIM``.

The standard setting (11-tap Gaussian window, 5 scales) needs a shorter side above
160 px. Smaller images (training crops) get the largest odd window that fits
(down to 3 px, i.e. sides of 33 px and more); such values are fine as a loss but are
not comparable with published MS-SSIM figures, so evaluation reports say the window.
"""

from __future__ import annotations

from pytorch_msssim import ms_ssim
from torch import Tensor

from mocodec.errors import ConfigError
from mocodec.losses.base import Distortion, check_pair
from mocodec.losses.registry import register_distortion

STANDARD_WINDOW = 11


def window_for(height: int, width: int, preferred: int = STANDARD_WINDOW) -> int:
    """Largest odd window <= ``preferred`` that 5-scale MS-SSIM accepts for this size."""
    side = min(height, width)
    win = preferred
    while win >= 3 and side <= (win - 1) * 16:
        win -= 2
    if win < 3:
        raise ConfigError(f"MS-SSIM needs images of at least 33 px on the shorter side, got {height}x{width}")
    return win


def msssim(x_hat: Tensor, x: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image MS-SSIM of [0, 1] images (higher is better, 1 for identical images)."""
    check_pair(x_hat, x)
    win = window_for(*x.shape[-2:])
    return ms_ssim(x_hat.float(), x.float(), data_range=data_range, size_average=False, win_size=win)


class MSSSIM(Distortion):
    higher_is_better = True
    score_name = "ms-ssim"

    def loss_per_image(self, x_hat: Tensor, x: Tensor) -> Tensor:
        return 1.0 - msssim(x_hat, x)

    def score(self, x_hat: Tensor, x: Tensor) -> Tensor:
        return msssim(x_hat, x)


@register_distortion(name="msssim")
def msssim_distortion() -> MSSSIM:
    return MSSSIM()
