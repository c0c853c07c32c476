"""MS-SSIM for evaluation: pytorch_msssim's values (to 1e-6) at a fraction of its cost, the original's half computed once.

A sweep measures MS-SSIM of one original against its decoded image at every rate point.
pytorch_msssim (what the training loss uses) filters five maps per level -- x, y, x², y², xy --
in ten separate grouped convolutions, computes SSIM and contrast-structure maps at every level
(SSIM is only used at the last), and repeats the original's half at every rate point. Here:

- :class:`MSSSIMReference` builds the original's pyramid and filtered maps (μx, σx²) once;
- :meth:`MSSSIMReference.score` filters only y, y² and xy, all channels in one depthwise
  convolution per direction on channels-last tensors (4-5x faster than the planar layout for this
  11-tap filter, measured on a 2-core AMD EPYC), then works on planar copies (a channel of an
  interleaved tensor is strided, and operations on it several times slower), and computes the
  contrast-structure means at levels 1-4 and the SSIM mean at level 5 only.

The arithmetic is pytorch_msssim's (the same window, constants, valid filtering, average pooling
with its odd-size padding, ReLU of the terms, weighted product), in float32; results agree to
1e-6 (tests/evaluation/test_msssim.py). For gradients (the training loss) use
:mod:`mocodec.losses.msssim`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mocodec.losses.msssim import window_for

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, as pytorch_msssim
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def gaussian_window(size: int, sigma: float = SIGMA) -> Tensor:
    """pytorch_msssim's 1-D window: ``exp(-x²/2σ²)`` on integer offsets, normalised (float32)."""
    coords = torch.arange(size, dtype=torch.float) - size // 2
    window = torch.exp(-(coords**2) / (2 * sigma**2))
    return window / window.sum()


class SeparableFilter:
    """Valid (no padding) separable Gaussian filtering of every channel, channels-last."""

    def __init__(self, size: int, channels: int) -> None:
        window = gaussian_window(size)
        self.vertical = window.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
        self.horizontal = window.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
        self.channels = channels

    def __call__(self, maps: Tensor) -> Tensor:
        maps = maps.contiguous(memory_format=torch.channels_last)
        out = F.conv2d(maps, self.vertical.to(maps), groups=self.channels)
        return F.conv2d(out, self.horizontal.to(maps), groups=self.channels)


def downsample(x: Tensor) -> Tensor:
    """pytorch_msssim's 2x2 average pooling, zero-padded (and counted) at an odd side, bit for bit.

    ``avg_pool2d(x, 2, padding=[h % 2, w % 2])`` pads both sides of an odd side, but its windows start
    at the first pad, so only the leading one is read. Its CPU kernel adds each window's values
    row by row, ``((x00 + x01) + x10) + x11``, and divides by 4; the same additions in the same
    order on strided views give the same bits (where MS-SSIM's terms nearly cancel, as on an
    inverted image, another order moves the score by more than 1e-6), 4-10x faster than the
    pooling kernel on this project's 2-core machines.
    """
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (w % 2, 0, h % 2, 0))  # + 0 is exact: the pad changes no sum
    top, bottom = x[..., 0::2, :], x[..., 1::2, :]
    return (top[..., 0::2] + top[..., 1::2]).add_(bottom[..., 0::2]).add_(bottom[..., 1::2]).div_(4)


class MSSSIMReference:
    """The original's half of MS-SSIM (N x C x H x W in [0, 1]); :meth:`score` a decoded image against it.

    Per level it keeps the original, μx, μx² and σx² + C2, and a channels-last buffer that each
    scored image's y, y² and xy are written into: every decoded version of an original has its
    shape, and reusing memory matters where page faults are dear (fresh tensors per operation
    doubled the time on this project's virtual machines).
    """

    @torch.no_grad()
    def __init__(self, x: Tensor, data_range: float = 1.0) -> None:
        self.window = window_for(*x.shape[-2:])
        n, c = x.shape[:2]
        self.c1, self.c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
        self.filter_two = SeparableFilter(self.window, 2 * c)
        self.filter_three = SeparableFilter(self.window, 3 * c)
        self.levels = []  # per level: (x, μx, μx², σx², the buffer of y, y², xy, a buffer of products)
        x = x.float()
        for level in range(len(WEIGHTS)):
            mu, mean_sq = self.filter_two(torch.cat((x, x * x), dim=1)).contiguous().split(c, dim=1)
            mu_sq = mu * mu
            maps = torch.empty((n, 3 * c, *x.shape[-2:]), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
            products = torch.empty_like(mu)
            self.levels.append((x, mu, mu_sq, mean_sq - mu_sq, maps, products))
            if level < len(WEIGHTS) - 1:
                x = downsample(x)

    @torch.no_grad()
    def score(self, y: Tensor) -> Tensor:
        """MS-SSIM of ``y`` (the original's shape) against the original: one value per image."""
        y = y.float()
        c = y.shape[1]
        terms = []
        for level, (x, mu_x, mu_x_sq, sigma_x, maps, products) in enumerate(self.levels):
            maps[:, :c].copy_(y)
            torch.mul(y, y, out=maps[:, c : 2 * c])
            torch.mul(x, y, out=maps[:, 2 * c :])
            # Filtered channels-last (fast for this filter), then planar, so that each map below is contiguous (a view of
            # one interleaved tensor is strided, and every operation on it several times slower). Ours to overwrite.
            mu_y, mean_yy, mean_xy = self.filter_three(maps).contiguous().split(c, dim=1)
            last = level == len(self.levels) - 1
            if last:  # the luminance term, before the views are overwritten
                mu_xy = mu_x * mu_y
                luminance = (2 * mu_xy + self.c1) / (mu_x_sq + mu_y * mu_y + self.c1)
            # pytorch_msssim's operations in its order (the differences of means cancel: no fused multiply-add here)
            cs = mean_xy.sub_(torch.mul(mu_x, mu_y, out=products)).mul_(2).add_(self.c2)  # 2σxy + C2
            cs.div_(mean_yy.sub_(torch.mul(mu_y, mu_y, out=products)).add_(sigma_x).add_(self.c2))  # / (σx² + σy² + C2)
            if last:
                terms.append(torch.relu((luminance * cs).flatten(2).mean(-1)))
            else:
                terms.append(torch.relu(cs.flatten(2).mean(-1)))
                y = downsample(y)
        stacked = torch.stack(terms) ** torch.tensor(WEIGHTS, dtype=y.dtype, device=y.device).view(-1, 1, 1)
        return stacked.prod(dim=0).mean(dim=1)


def ms_ssim(y: Tensor, x: Tensor) -> Tensor:
    """MS-SSIM of ``y`` against ``x`` (N x C x H x W in [0, 1]), one value per image."""
    return MSSSIMReference(x).score(y)


__all__ = ["MSSSIMReference", "ms_ssim", "gaussian_window"]
