"""Integer-exact entropy parameters: the networks that steer the entropy coder, computed alike on every machine.

A decoder must derive exactly the CDF rows the encoder used (and, where decoded latents feed
back into a context model, exactly its means). Float networks do not promise that: the last
bits of a convolution depend on the kernel (AVX-512, AVX2, SSE), the thread count and the
device, and one ulp across a scale threshold picks another CDF row, after which the rANS
decoder reads garbage. The remedy of the literature -- integer networks (Ballé, Johnston &
Minnen, ICLR 2019), post-training quantisation of the entropy model (He et al. 2022) -- is to
compute these networks in integers. Here:

* **weights** are integers ``W = round(w · 2^s)`` with one power-of-two scale per output channel,
  so that the channel's largest weight gets :attr:`FixedPoint.weight_bits` bits;
* **activations** are integers ``A = round(a · 2^fraction_bits)``, saturated at ``±limit``;
* a **convolution** runs in float64 on those integers. When a network is built, the largest
  accumulator it can reach, ``Σ|W|·limit + |B|`` per output channel, is checked to stay below
  2^53 (a channel over it loses weight bits until it fits): every product and every partial sum
  is then an exactly representable integer, so the result is the exact integer dot product in
  any summation order -- on any CPU kernel, thread count or GPU. cuDNN is bypassed for it (its
  FFT and Winograd algorithms are not plain sums of products);
* **rescaling** to the activation format multiplies by a power of two and rounds with
  ``floor(x + 1/2)``, both exact; ReLU is exact; LeakyReLU's slope is rounded to ``k / 2^24`` and
  applied as an integer product and a rescale.

The format is a function of the float weights alone -- no calibration set, nothing stored in the
file -- so weights a user brings (CompressAI's published ones, their own checkpoints) are
converted when they code and their files travel too. :data:`FORMAT`'s widths were chosen from
measurements (activation ranges on training photographs, rate cost on Kodak; see
docs/portable_files.md).

The coder's CDF tables are derived here too, in float64 from the model's parameters
(:func:`bottleneck_tables`) and from a fixed dyadic scale table (:func:`gaussian_tables`), never
from whatever float32 tables the weights carry: what differs between machines in float64 is far
below the 16-bit quantisation of the tables, and the file's latent check catches the rest.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck
from compressai.entropy_models.entropy_models import pmf_to_quantized_cdf
from torch import Tensor, nn

from mocodec.codecs.rans import RansTables
from mocodec.errors import ConfigError

# Integers up to 2^53 are exact in float64, and so are sums and products that stay below it.
EXACT_BOUND = 2.0**53

# CompressAI's default scale table (SCALES_MIN, SCALES_MAX, SCALES_LEVELS), rounded to 2^-16.
SCALES_MIN, SCALES_MAX, SCALES_LEVELS, SCALE_GRID_BITS = 0.11, 256.0, 64, 16

# LeakyReLU's slope is applied as k / 2^SLOPE_BITS.
SLOPE_BITS = 24


class NoExactForm(ConfigError):
    """A network holds a layer that has no integer-exact form here (attention, GELU, GDN, ...)."""


@dataclass(frozen=True)
class FixedPoint:
    """Widths of the fixed-point format (see the module docstring)."""

    weight_bits: int = 12
    fraction_bits: int = 12
    activation_bits: int = 28

    @property
    def one(self) -> float:
        """The integer that stands for 1.0."""
        return float(2**self.fraction_bits)

    @property
    def limit(self) -> float:
        """The largest activation magnitude, as an integer."""
        return float(2 ** (self.activation_bits - 1) - 1)

    def to_fixed(self, x: Tensor) -> Tensor:
        """Real values -> this format's integers (float64), saturated."""
        return torch.round(x.double() * self.one).clamp_(-self.limit, self.limit)

    def to_real(self, a: Tensor) -> Tensor:
        """This format's integers -> the real values they stand for (float64, exact)."""
        return a / self.one


FORMAT = FixedPoint()


@contextlib.contextmanager
def exact_kernels(x: Tensor) -> Iterator[None]:
    """Convolutions whose float64 result on integers is exact: cuDNN off on a GPU (its FFT/Winograd are not sums of products)."""
    if x.is_cuda:
        with torch.backends.cudnn.flags(enabled=False):
            yield
    else:
        yield


def round_half_up(x: Tensor) -> Tensor:
    return torch.floor(x + 0.5)


def powers_of_two(exponents: Tensor) -> Tensor:
    """``2^e`` for integer exponents, float64, exact (built from Python floats, not a vectorised ``pow``)."""
    return torch.tensor([math.ldexp(1.0, e) for e in exponents.tolist()], dtype=torch.float64)


class IntegerConv:
    """A plain, masked (CompressAI's ``MaskedConv2d``) or transposed convolution on this format's integers."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, fmt: FixedPoint) -> None:
        self.conv, self.fmt = conv, fmt
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        weight = conv.weight.detach().double().cpu()
        if isinstance(getattr(conv, "mask", None), Tensor):
            weight = weight * conv.mask.detach().double().cpu()
        out_dim = 1 if self.transposed else 0  # transposed convolutions store (in, out, kh, kw)
        bias = conv.bias.detach().double().cpu() if conv.bias is not None else weight.new_zeros(weight.size(out_dim))
        per_channel = [d for d in range(weight.dim()) if d != out_dim]
        along_out = [-1 if d == out_dim else 1 for d in range(weight.dim())]
        peak = weight.abs().amax(dim=per_channel)
        # frexp: peak = m * 2^e with m in [0.5, 1), so |round(w * 2^(bits-1-e))| <= 2^(bits-1).
        shift = torch.where(peak > 0, fmt.weight_bits - 1 - torch.frexp(peak).exponent, 0).long()
        while True:
            integer_weight = torch.round(weight * powers_of_two(shift).view(along_out))
            integer_bias = torch.round(bias * powers_of_two(shift + fmt.fraction_bits))
            reach = integer_weight.abs().sum(dim=per_channel) * fmt.limit + integer_bias.abs()
            over = reach >= EXACT_BOUND
            if not over.any():
                break
            shift = torch.where(over, shift - 1, shift)  # a channel that could leave float64's exact integers loses a bit
        device = conv.weight.device
        self.weight, self.bias = integer_weight.to(device), integer_bias.to(device)
        self.rescale = powers_of_two(-shift).view(1, -1, 1, 1).to(device)

    def __call__(self, a: Tensor, padding: int | None = None) -> Tensor:
        """The layer on integer activations ``a``; ``padding`` overrides the layer's (a crop around one position)."""
        conv = self.conv
        with exact_kernels(a):
            if self.transposed:
                acc = F.conv_transpose2d(
                    a, self.weight, self.bias, conv.stride, conv.padding, conv.output_padding, conv.groups, conv.dilation
                )
            else:
                pad = conv.padding if padding is None else padding
                acc = F.conv2d(a, self.weight, self.bias, conv.stride, pad, conv.dilation, conv.groups)
        return round_half_up(acc * self.rescale).clamp_(-self.fmt.limit, self.fmt.limit)


class IntegerReLU:
    def __call__(self, a: Tensor) -> Tensor:
        return a.clamp_min(0)


class IntegerLeakyReLU:
    """LeakyReLU with its slope rounded to ``k / 2^24``: ``floor(a·k/2^24 + 1/2)`` below zero (|a·k| < 2^53: exact)."""

    def __init__(self, negative_slope: float) -> None:
        self.slope = round(negative_slope * 2**SLOPE_BITS) / 2**SLOPE_BITS

    def __call__(self, a: Tensor) -> Tensor:
        return torch.where(a >= 0, a, round_half_up(a * self.slope))


def integer_layer(module: nn.Module, fmt: FixedPoint) -> IntegerConv | IntegerReLU | IntegerLeakyReLU:
    """The integer form of one layer of an entropy-parameter network."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.padding_mode == "zeros":
        return IntegerConv(module, fmt)
    if isinstance(module, nn.ReLU):
        return IntegerReLU()
    if isinstance(module, nn.LeakyReLU):
        return IntegerLeakyReLU(module.negative_slope)
    raise NoExactForm(f"{type(module).__name__} has no integer-exact form in mocodec")


class IntegerNetwork:
    """A float ``nn.Sequential`` of convolutions, ReLUs and LeakyReLUs, run on integers (see the module docstring).

    Built from the float module's current weights each time a codec codes, so it can never be stale.
    """

    def __init__(self, network: nn.Module, fmt: FixedPoint = FORMAT) -> None:
        modules = list(network) if isinstance(network, nn.Sequential) else [network]
        self.layers = [integer_layer(m, fmt) for m in modules]
        self.fmt = fmt

    def __call__(self, a: Tensor) -> Tensor:
        for layer in self.layers:
            a = layer(a)
        return a


def has_exact_form(network: nn.Module) -> bool:
    try:
        IntegerNetwork(network)
    except NoExactForm:
        return False
    return True


# --------------------------------------------------------------------------- the coder's tables


def dyadic_scale_table() -> list[float]:
    """CompressAI's default scale table (``exp(linspace(log 0.11, log 256, 64))``) rounded to multiples of 2^-16.

    The rounding makes it the same on every machine: each value is at least 1e-4 grid steps away
    from a rounding boundary (tested), far beyond any libm's error in ``exp``.
    """
    low, high = math.log(SCALES_MIN), math.log(SCALES_MAX)
    step = (high - low) / (SCALES_LEVELS - 1)
    return [round(math.exp(low + i * step) * 2**SCALE_GRID_BITS) / 2**SCALE_GRID_BITS for i in range(SCALES_LEVELS)]


def quantized_cdf_rows(pmf: Tensor, tail_mass: Tensor, pmf_length: Tensor, precision: int) -> Tensor:
    """CompressAI's ``_pmf_to_cdf``: one quantised CDF row per distribution (the tail mass as the last symbol)."""
    rows = torch.zeros(len(pmf_length), int(pmf_length.max()) + 2, dtype=torch.int32)
    for i, (p, n) in enumerate(zip(pmf, pmf_length.tolist())):
        cdf = pmf_to_quantized_cdf(torch.cat((p[:n], tail_mass[i])), precision)
        rows[i, : cdf.size(0)] = cdf
    return rows


@functools.lru_cache(maxsize=4)
def gaussian_tables(tail_mass: float = 1e-9, precision: int = 16) -> RansTables:
    """The Gaussian conditional's tables for :func:`dyadic_scale_table`: CompressAI's ``update()`` in float64."""
    scales = torch.tensor(dyadic_scale_table(), dtype=torch.float64)
    multiplier = -torch.special.ndtri(torch.tensor(tail_mass / 2, dtype=torch.float64))
    pmf_center = torch.ceil(scales * multiplier).int()
    pmf_length = 2 * pmf_center + 1
    samples = torch.abs(torch.arange(int(pmf_length.max())).int() - pmf_center[:, None]).double()

    def standard_cdf(x: Tensor) -> Tensor:
        return 0.5 * torch.erfc(-(2**-0.5) * x)

    upper = standard_cdf((0.5 - samples) / scales[:, None])
    lower = standard_cdf((-0.5 - samples) / scales[:, None])
    rows = quantized_cdf_rows(upper - lower, 2 * lower[:, :1], pmf_length, precision)
    return RansTables(rows, pmf_length + 2, -pmf_center)


def scale_indexes(scales: Tensor, fmt: FixedPoint = FORMAT) -> Tensor:
    """The CDF row of every fixed-point scale (int32): the number of thresholds of :func:`dyadic_scale_table` below it.

    A comparison of integers with dyadic numbers in float64: exact. (CompressAI's rule; the
    lower bound it applies first changes no row, since its bound is the table's first entry.)
    """
    thresholds = torch.tensor(dyadic_scale_table()[:-1], dtype=torch.float64, device=scales.device) * fmt.one
    return torch.searchsorted(thresholds, scales.contiguous()).int()


def bottleneck_tables(entropy_bottleneck: EntropyBottleneck) -> RansTables:
    """The factorized prior's tables, derived by CompressAI's own ``update()`` run in float64 on a copy."""
    model = copy.deepcopy(entropy_bottleneck).cpu().double()
    model.update(force=True)
    return RansTables.of(model)


def fixed_medians(entropy_bottleneck: EntropyBottleneck, fmt: FixedPoint = FORMAT) -> Tensor:
    """The bottleneck's medians in the fixed-point format (C, float64): ``ẑ = symbol + median`` becomes integer."""
    return fmt.to_fixed(entropy_bottleneck.quantiles.detach()[:, 0, 1])


def dequantize(symbols: Tensor, means: Tensor | None, fmt: FixedPoint = FORMAT) -> Tensor:
    """``ŷ = symbol + mean`` from fixed-point means, rounded once to float32 (the synthesis transform's input)."""
    y_hat = symbols.double()
    if means is not None:
        y_hat = y_hat + fmt.to_real(means)
    return y_hat.float()


__all__ = [
    "FORMAT",
    "FixedPoint",
    "IntegerNetwork",
    "NoExactForm",
    "bottleneck_tables",
    "dequantize",
    "dyadic_scale_table",
    "fixed_medians",
    "gaussian_tables",
    "has_exact_form",
    "scale_indexes",
]
