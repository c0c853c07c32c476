"""The checkerboard split of a latent into anchors and non-anchors (He et al., CVPR 2021).

A latent is coded in two passes: first the *anchors*, from the hyperprior and channel
context alone, then the *non-anchors*, which may also look at the decoded anchors
around them. MLIC++'s anchors are the positions with odd ``row + col``::

    . A . A
    A . A .
    . A . A

Everything here is pure indexing, so the encoder, the decoder and ``forward`` pick
exactly the same positions in exactly the same order.
"""

from __future__ import annotations

import enum

import torch
from torch import Tensor


class Part(enum.Enum):
    """One half of the checkerboard; the value is the parity of ``row + col``."""

    ANCHOR = 1
    NON_ANCHOR = 0

    def mask(self, height: int, width: int, device: torch.device | None = None) -> Tensor:
        """Boolean ``height x width`` map, True at this part's positions."""
        rows = torch.arange(height, device=device).unsqueeze(1)
        cols = torch.arange(width, device=device).unsqueeze(0)
        return (rows + cols) % 2 == self.value


ANCHOR, NON_ANCHOR = Part.ANCHOR, Part.NON_ANCHOR


def keep(x: Tensor, part: Part) -> Tensor:
    """``x`` (..., H, W) with the other part's positions set to zero."""
    return torch.where(part.mask(*x.shape[-2:], device=x.device), x, 0.0)


def merge(anchor_values: Tensor, non_anchor_values: Tensor) -> Tensor:
    """Anchor positions from the first tensor, non-anchor positions from the second."""
    return torch.where(ANCHOR.mask(*anchor_values.shape[-2:], device=anchor_values.device), anchor_values, non_anchor_values)


def gather(x: Tensor, part: Part) -> Tensor:
    """B x C x H x W -> B x C x K: the K values at ``part``'s positions, in raster order."""
    return x[..., part.mask(*x.shape[-2:], device=x.device)]


def scatter(values: Tensor, part: Part, size: tuple[int, int]) -> Tensor:
    """Inverse of :func:`gather`: B x C x K -> B x C x H x W, zeros at the other part."""
    out = values.new_zeros(*values.shape[:-1], *size)
    out[..., part.mask(*size, device=values.device)] = values
    return out
