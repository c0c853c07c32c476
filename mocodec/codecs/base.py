"""What every codec in the registry shares, learned or classic.

The contract (CompressAI's, with one refinement): ``forward(x) -> {"x_hat", "likelihoods"}``,
``compress(x) -> {"strings", "shape"}``, ``decompress(strings, shape) -> {"x_hat"}``,
inputs in [0, 1], NCHW. Here ``shape`` is always the *image* size ``(H, W)``: the codec
pads to its stride and crops back itself, so any H x W round-trips and a decoder needs
nothing but the strings and the image size (which the bitstream header stores).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mocodec.codecs.arithmetic import ARITHMETICS
from mocodec.errors import ConfigError

NO_WEIGHTS_ID = bytes(8)


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad H and W of ``x`` up to a multiple of ``multiple`` by replicating the border.

    Replication (not zeros, as CompressAI's evaluation uses) costs fewer bits at the
    edge and works for any size, even 1x1, where reflection would not.
    """
    h, w = x.shape[-2:]
    ph, pw = math.ceil(h / multiple) * multiple - h, math.ceil(w / multiple) * multiple - w
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def padded_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    return tuple(math.ceil(s / multiple) * multiple for s in size)  # type: ignore[return-value]


class CodecIdentity:
    """Mixin holding what a bitstream header records about the codec that wrote it."""

    codec_name: str = ""
    quality: int = 0
    weights_id: bytes = NO_WEIGHTS_ID  # first 8 bytes of the weights file's SHA-256; zeros: random init
    # The arithmetics a codec can compute its entropy parameters in (mocodec.codecs.arithmetic), the first
    # its default; none for codecs without learned entropy parameters (classic codecs).
    arithmetics: tuple[str, ...] = ()
    arithmetic: str | None = None

    def set_identity(self, name: str, quality: int, weights_id: bytes = NO_WEIGHTS_ID) -> None:
        self.codec_name, self.quality, self.weights_id = name, int(quality), weights_id

    def set_arithmetic(self, arithmetic: str | None) -> None:
        """Code with ``arithmetic`` (``exact`` or ``float``); None keeps the codec's default."""
        if arithmetic is None:
            return
        if arithmetic not in ARITHMETICS:
            raise ConfigError(f"unknown arithmetic '{arithmetic}'; use one of {', '.join(ARITHMETICS)}")
        if arithmetic not in self.arithmetics:
            has = ", ".join(self.arithmetics) or "none (it has no learned entropy parameters)"
            raise ConfigError(f"{self.codec_name} cannot code with {arithmetic} arithmetic; it has {has}")
        self.arithmetic = arithmetic


def device_of(codec: nn.Module) -> torch.device:
    """Where a codec's transforms run (its parameters' device); classic codecs have none and run on the CPU."""
    first = next(codec.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def all_finite(x: Tensor) -> bool:
    """Whether every value of ``x`` is finite: its sum is exactly when they are, unless finite values overflow it.

    One reduction instead of a mask of the whole tensor (20x faster on an image); a sum that
    overflows is checked value by value.
    """
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def check_input(x: Tensor) -> None:
    """Codecs take N x 3 x H x W floats in [0, 1]."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ConfigError(f"codec input must be N x 3 x H x W, got shape {tuple(x.shape)}")
    if not all_finite(x):
        raise ConfigError("codec input contains NaN or Inf values")
