"""Residual blocks of the MLIC++ transforms.

They are CompressAI's residual blocks (Cheng et al., CVPR 2020: ``ResidualBlock``,
``ResidualBlockWithStride``, ``ResidualBlockUpsample``) with GELU in place of
LeakyReLU, as MLIC++ uses. Submodule names are CompressAI's (``conv1``, ``gdn``,
``skip``, ...), so checkpoints of either layout share their keys.
"""

from __future__ import annotations

from compressai.layers import GDN, conv1x1, conv3x3, subpel_conv3x3
from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with GELU and an identity (or 1x1) shortcut."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch)
        self.act = nn.GELU()
        self.conv2 = conv3x3(out_ch, out_ch)
        self.skip = conv1x1(in_ch, out_ch) if in_ch != out_ch else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.conv2(self.act(self.conv1(x))))
        return out + (self.skip(x) if self.skip is not None else x)


class ResidualBlockWithStride(nn.Module):
    """Downsampling block: strided 3x3, GELU, 3x3, GDN, plus a strided 1x1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride=stride)
        self.act = nn.GELU()
        self.conv2 = conv3x3(out_ch, out_ch)
        self.gdn = GDN(out_ch)
        self.skip = conv1x1(in_ch, out_ch, stride=stride) if stride != 1 or in_ch != out_ch else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.gdn(self.conv2(self.act(self.conv1(x))))
        return out + (self.skip(x) if self.skip is not None else x)


class ResidualBlockUpsample(nn.Module):
    """Upsampling block: sub-pixel 3x3, GELU, 3x3, inverse GDN, plus a sub-pixel shortcut."""

    def __init__(self, in_ch: int, out_ch: int, upsample: int = 2) -> None:
        super().__init__()
        self.subpel_conv = subpel_conv3x3(in_ch, out_ch, upsample)
        self.act = nn.GELU()
        self.conv = conv3x3(out_ch, out_ch)
        self.igdn = GDN(out_ch, inverse=True)
        self.upsample = subpel_conv3x3(in_ch, out_ch, upsample)

    def forward(self, x: Tensor) -> Tensor:
        return self.igdn(self.conv(self.act(self.subpel_conv(x)))) + self.upsample(x)
