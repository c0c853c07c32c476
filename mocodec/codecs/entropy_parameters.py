"""The two ways a codec computes what steers its entropy coder, behind one interface.

A codec's coding code (:mod:`mocodec.codecs.hyperprior`) is written once against this interface
and runs in either arithmetic (:mod:`mocodec.codecs.arithmetic` says what each promises):

* :class:`FloatArithmetic`: CompressAI's float32 networks and the tables the entropy models hold,
  so the strings are CompressAI's own; latents are float32.
* :class:`ExactArithmetic`: the networks on integers, tables derived in float64
  (:mod:`mocodec.codecs.exact`); latents that feed a network are carried in the fixed-point
  format (``ŷ·2^f``, integers in float64).

Both are built per coding call from the codec's current weights; what a call does not use (a table,
a network) is never built. What they derive from the weights (integer networks, tables in the
coder's form) is kept on the codec between calls (:func:`derived`), keyed by the identity and
in-place version of every tensor it comes from, so an optimiser step, ``load_state_dict``,
``update()`` or ``.to()`` is never missed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from functools import cached_property
from typing import TypeVar

import torch.nn.functional as F
from torch import Tensor, nn

from mocodec.codecs import exact
from mocodec.codecs.arithmetic import EXACT, FLOAT
from mocodec.codecs.rans import RansTables, scale_indexes

T = TypeVar("T")


def weights_version(module: nn.Module) -> tuple:
    """Identity, storage and in-place version of every parameter and buffer of ``module``: changes with any change to them."""
    return tuple((id(t), t.data_ptr(), t._version) for t in itertools.chain(module.parameters(), module.buffers()))


def derived(codec: nn.Module, source: nn.Module, key: Hashable, build: Callable[[], T]) -> T:
    """``build()``, a function of ``source``'s weights, kept on ``codec`` until those weights change."""
    cache = codec.__dict__.setdefault("_derived_from_weights", {})
    version = weights_version(source)
    hit = cache.get((id(source), key))
    if hit is None or hit[0] != version:
        hit = cache[(id(source), key)] = (version, build())
    return hit[1]


class FloatArithmetic:
    """CompressAI's float32 arithmetic and the tables the entropy models hold: the bytes of CompressAI's coder."""

    name = FLOAT

    def __init__(self, codec: nn.Module) -> None:
        self.codec = codec
        self.bottleneck_medians = codec.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
        self.masked_weights: dict[nn.Module, Tensor] = {}

    @cached_property
    def bottleneck_tables(self) -> RansTables:
        bottleneck = self.codec.entropy_bottleneck
        return derived(self.codec, bottleneck, (self.name, "tables"), lambda: RansTables.of(bottleneck))

    @cached_property
    def gaussian_tables(self) -> RansTables:
        gaussian = self.codec.gaussian_conditional
        return derived(self.codec, gaussian, (self.name, "tables"), lambda: RansTables.of(gaussian))

    def network(self, module: nn.Module) -> Callable[[Tensor], Tensor]:
        return module

    def context_at(self, masked_conv: nn.Conv2d, crop: Tensor) -> Tensor:
        """A masked context convolution on the k x k crop around one position, as CompressAI's serial coder computes it."""
        if masked_conv not in self.masked_weights:
            self.masked_weights[masked_conv] = masked_conv.weight * masked_conv.mask
        return F.conv2d(crop, self.masked_weights[masked_conv], bias=masked_conv.bias)

    def quantize(self, y: Tensor, means: Tensor | None = None) -> Tensor:
        """The encoder's symbols ``round(y - μ)`` (int32), as CompressAI rounds them."""
        return (y - means if means is not None else y).round().int()

    def dequantize(self, symbols: Tensor, means: Tensor | None = None) -> Tensor:
        """``symbol + μ`` as CompressAI's entropy models compute it (float32)."""
        return symbols.type_as(means) + means if means is not None else symbols.float()

    def indexes(self, scales: Tensor) -> Tensor:
        return scale_indexes(self.codec.gaussian_conditional, scales)

    def real(self, values: Tensor) -> Tensor:
        """The float32 values a latent or a parameter stands for (here: itself)."""
        return values


class ExactArithmetic:
    """Integer entropy-parameter networks and float64-derived tables (:mod:`mocodec.codecs.exact`): portable files."""

    name = EXACT

    def __init__(self, codec: nn.Module, fmt: exact.FixedPoint = exact.FORMAT) -> None:
        self.codec, self.fmt = codec, fmt
        device = codec.entropy_bottleneck.quantiles.device
        self.bottleneck_medians = exact.fixed_medians(codec.entropy_bottleneck, fmt).reshape(1, -1, 1, 1).to(device)
        self.networks: dict[nn.Module, exact.IntegerNetwork] = {}

    @cached_property
    def bottleneck_tables(self) -> RansTables:
        bottleneck = self.codec.entropy_bottleneck
        return derived(self.codec, bottleneck, (self.name, "tables"), lambda: exact.bottleneck_tables(bottleneck))

    @cached_property
    def gaussian_tables(self) -> RansTables:
        gaussian = self.codec.gaussian_conditional
        return exact.gaussian_tables(float(gaussian.tail_mass), gaussian.entropy_coder_precision)

    def network(self, module: nn.Module) -> exact.IntegerNetwork:
        """``module`` on fixed-point integers (converted once for its current weights)."""
        if module not in self.networks:
            self.networks[module] = derived(self.codec, module, self.fmt, lambda: exact.IntegerNetwork(module, self.fmt))
        return self.networks[module]

    def context_at(self, masked_conv: nn.Conv2d, crop: Tensor) -> Tensor:
        """A masked context convolution on the k x k crop (fixed point) around one position."""
        return self.network(masked_conv).layers[0](crop, padding=0)

    def quantize(self, y: Tensor, means: Tensor | None = None) -> Tensor:
        """The encoder's symbols ``round(y - μ)`` (int32) against the fixed-point means, in float64."""
        y = y.double()
        return (y - self.fmt.to_real(means) if means is not None else y).round().int()

    def dequantize(self, symbols: Tensor, means: Tensor | None = None) -> Tensor:
        """``symbol + μ`` in the fixed-point format (integers, float64): what the context networks read."""
        fixed = symbols.double() * self.fmt.one
        return fixed + means if means is not None else fixed

    def indexes(self, scales: Tensor) -> Tensor:
        return exact.scale_indexes(scales, self.fmt)

    def real(self, values: Tensor) -> Tensor:
        """The float32 values a fixed-point latent or parameter stands for (rounded once, the same everywhere)."""
        return self.fmt.to_real(values).float()


def arithmetic_of(codec: nn.Module) -> FloatArithmetic | ExactArithmetic:
    """The arithmetic ``codec.arithmetic`` names, built from its current weights."""
    return ExactArithmetic(codec) if codec.arithmetic == EXACT else FloatArithmetic(codec)


__all__ = ["ExactArithmetic", "FloatArithmetic", "arithmetic_of"]
