"""Building blocks of the learned codecs beyond CompressAI's (residual blocks, attention, checkerboard)."""

from mocodec.codecs.layers.attention import (
    CheckerboardWindowAttention,
    GlobalInterContext,
    GlobalIntraContext,
    linear_attention,
)
from mocodec.codecs.layers.checkerboard import ANCHOR, NON_ANCHOR, Part, gather, keep, merge, scatter
from mocodec.codecs.layers.residual import ResidualBlock, ResidualBlockUpsample, ResidualBlockWithStride

__all__ = [
    "ANCHOR",
    "NON_ANCHOR",
    "Part",
    "gather",
    "keep",
    "merge",
    "scatter",
    "CheckerboardWindowAttention",
    "GlobalInterContext",
    "GlobalIntraContext",
    "linear_attention",
    "ResidualBlock",
    "ResidualBlockUpsample",
    "ResidualBlockWithStride",
]
