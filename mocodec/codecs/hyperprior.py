"""The scale-hyperprior family from CompressAI, padded to their stride (Ballé 2018, Minnen 2018).

The transforms and entropy models are CompressAI's; what mocodec adds is the padding
contract of :mod:`mocodec.codecs.base`, CDF tables that are always ready to code, a latent
check in every coded image, and coding in either arithmetic of
:mod:`mocodec.codecs.entropy_parameters`: ``exact`` (the default: files that decode on any
machine) or ``float`` (CompressAI's coder, string for string).
Qualities 1-8 use CompressAI's (N, M) table, mocodec's own sizes (:data:`OWN_SIZES`) their own;
``N``/``M`` override them (tiny test models).
Importing this module imports CompressAI (seconds): :mod:`mocodec.codecs.zoo` imports it
when the first of these codecs is built.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from compressai import models as cm
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.zoo.image import cfgs as COMPRESSAI_CFGS
from compressai.zoo.image import model_urls as COMPRESSAI_URLS
from torch import Tensor, nn

from mocodec.codecs.arithmetic import EXACT, FLOAT
from mocodec.codecs.base import CodecIdentity, check_input, pad_to_multiple, padded_size
from mocodec.codecs.entropy_parameters import ExactArithmetic, FloatArithmetic, arithmetic_of
from mocodec.codecs.rans import latent_check
from mocodec.errors import ConfigError

Arithmetic = ExactArithmetic | FloatArithmetic


def channel_indexes(shape: tuple[int, ...], device: torch.device | None = None) -> Tensor:
    """The factorized prior's CDF row of every position of a 1 x C x H x W latent: its channel."""
    return torch.arange(shape[1], dtype=torch.int32, device=device).view(1, -1, 1, 1).expand(shape)


def padded_strings(strings: list[bytes], max_symbols: int) -> list[bytes]:
    """The rANS decoder reads at most one 32-bit word per symbol and does not check the string's end: zero
    padding for the largest symbol count keeps a damaged or mismatched string's reads inside our own buffer."""
    return [s + bytes(4 * max_symbols + 64) for s in strings]


# The buffers of CompressAI's entropy models that ``update()`` derives: the coder's CDF tables and, for the
# Gaussian conditional, the scale table they are built on (CompressAI's fixed default).
CODER_TABLES = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


class PaddedCompressAIMixin(CodecIdentity):
    """Pads inputs to ``stride``, crops outputs back, codes in either arithmetic, and keeps CDF tables ready.

    A subclass codes one padded image with :meth:`encode_image` / :meth:`decode_image`, written
    once against the arithmetic interface; ``compress``/``decompress`` loop over the batch and
    add each image's latent check (:func:`~mocodec.codecs.rans.latent_check`) to the output.
    """

    stride = 64  # total downsampling of the hyper-latent z
    arithmetics = (EXACT, FLOAT)
    arithmetic = EXACT

    def forward(self, x: Tensor) -> dict[str, Any]:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
        if self.training:
            out = super().forward(x)
        else:
            with torch.no_grad():
                out = self.coded_forward(x, arithmetic_of(self))
        out["x_hat"] = out["x_hat"][..., :h, :w]
        return out

    def coder_table_keys(self) -> set[str]:
        """The state-dict keys of the coder's CDF tables: derived from the other entries, so a file may leave them out."""
        return {
            f"{name}.{table}"
            for name, module in self.named_modules()
            if isinstance(module, (EntropyBottleneck, GaussianConditional))
            for table in CODER_TABLES
            if hasattr(module, table)
        }

    def load_state_dict(self, state_dict: Mapping[str, Tensor], strict: bool = True) -> Any:
        """CompressAI's, and also weights without the coder's CDF tables (mocodec ships its weights so).

        The tables are then derived from the loaded parameters at once, never left from the weights
        this codec held before; coding in exact arithmetic derives its own anyway.
        """
        tables = self.coder_table_keys()
        if not tables or not tables.isdisjoint(state_dict):
            return super().load_state_dict(state_dict, strict=strict)
        result = nn.Module.load_state_dict(self, state_dict, strict=False)
        unmatched = sorted(set(result.missing_keys) - tables) + sorted(result.unexpected_keys)
        if strict and unmatched:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}: unmatched keys {', '.join(unmatched[:5])}")
        self.update(force=True)
        return result

    def entropy_tables_ready(self) -> bool:
        return all(m._offset.numel() > 0 for m in self.modules() if isinstance(m, (EntropyBottleneck, GaussianConditional)))

    def ensure_entropy_tables(self) -> None:
        """Build the CDF tables from the current parameters if they are missing (never stale ones)."""
        if not self.entropy_tables_ready():
            self.update(force=True)

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict[str, Any]:
        check_input(x)
        self.ensure_entropy_tables()
        arithmetic = arithmetic_of(self)
        strings, checks = [], []
        for image in pad_to_multiple(x, self.stride).split(1):
            image_strings, symbols = self.encode_image(image, arithmetic)
            strings.append(image_strings)
            checks.append(latent_check(symbols))
        return {"strings": [list(group) for group in zip(*strings)], "shape": tuple(x.shape[-2:]), "check": checks}

    @torch.no_grad()
    def decompress(self, strings: list, shape: tuple[int, int]) -> dict[str, Any]:
        self.ensure_entropy_tables()
        arithmetic = arithmetic_of(self)
        padded = padded_size(shape, self.stride)
        max_symbols = max(self.N, self.M) * (padded[0] // 16) * (padded[1] // 16)
        x_hats, checks = [], []
        for image_strings in zip(*strings, strict=True):
            y_hat, symbols = self.decode_image(padded_strings(list(image_strings), max_symbols), padded, arithmetic)
            x_hats.append(self.g_s(y_hat).clamp_(0, 1)[..., : shape[0], : shape[1]])
            checks.append(latent_check(symbols))
        return {"x_hat": torch.cat(x_hats), "check": checks}

    # --- the factorized prior of z (of y, for bmshj2018-factorized)

    def encode_bottleneck(self, latent: Tensor, arithmetic: Arithmetic) -> tuple[Tensor, bytes]:
        """The latent's symbols (rounded around the medians) and their string."""
        symbols = arithmetic.quantize(latent, arithmetic.bottleneck_medians)
        return symbols, arithmetic.bottleneck_tables.encode(symbols, channel_indexes(symbols.shape))

    def decode_bottleneck(self, string: bytes, shape: tuple[int, int], arithmetic: Arithmetic) -> Tensor:
        tables = arithmetic.bottleneck_tables
        return tables.decode(tables.decoder(string), channel_indexes((1, len(tables.cdfs), *shape), arithmetic.bottleneck_medians.device))

    # --- one image of the hyperprior models (the factorized and autoregressive models override these)

    def hyper_input(self, y: Tensor) -> Tensor:
        """What ``h_a`` analyses: ``y`` (``|y|`` for the scale-only hyperprior)."""
        return y

    def split_parameters(self, params: Tensor) -> tuple[Tensor, Tensor | None]:
        """``h_s``'s output as (scales, means); the scale-only hyperprior has no means."""
        scales, means = params.chunk(2, 1)
        return scales, means

    def gaussian_parameters(self, z_symbols: Tensor, arithmetic: Arithmetic) -> tuple[Tensor, Tensor | None]:
        """Scales and means of y's Gaussians from ẑ, in the arithmetic's representation."""
        z_hat = arithmetic.dequantize(z_symbols, arithmetic.bottleneck_medians)
        return self.split_parameters(arithmetic.network(self.h_s)(z_hat))

    def encode_image(self, x: Tensor, arithmetic: Arithmetic) -> tuple[list[bytes], list[Tensor]]:
        """One padded image's strings ``[y, z]`` and symbols."""
        y = self.g_a(x)
        z_symbols, z_string = self.encode_bottleneck(self.h_a(self.hyper_input(y)), arithmetic)
        scales, means = self.gaussian_parameters(z_symbols, arithmetic)
        y_symbols = arithmetic.quantize(y, means)
        return [arithmetic.gaussian_tables.encode(y_symbols, arithmetic.indexes(scales)), z_string], [y_symbols, z_symbols]

    def decode_image(self, strings: list[bytes], padded: tuple[int, int], arithmetic: Arithmetic) -> tuple[Tensor, list[Tensor]]:
        """ŷ (float32, the input of ``g_s``) and the symbols, from one image's strings."""
        y_string, z_string = strings
        z_symbols = self.decode_bottleneck(z_string, (padded[0] // 64, padded[1] // 64), arithmetic)
        scales, means = self.gaussian_parameters(z_symbols, arithmetic)
        tables = arithmetic.gaussian_tables
        y_symbols = tables.decode(tables.decoder(y_string), arithmetic.indexes(scales))
        return arithmetic.real(arithmetic.dequantize(y_symbols, means)), [y_symbols, z_symbols]

    def coded_forward(self, x: Tensor, arithmetic: Arithmetic) -> dict[str, Any]:
        """Eval-mode ``forward``: the reconstruction the decoder computes, and the coded symbols' likelihoods.

        It reads no CDF table, so validating a model in training never builds (soon stale) tables in it.
        """
        y = self.g_a(x)
        z = self.h_a(self.hyper_input(y))
        _, z_likelihoods = self.entropy_bottleneck(z)
        scales, means = self.gaussian_parameters(arithmetic.quantize(z, arithmetic.bottleneck_medians), arithmetic)
        y_hat = arithmetic.dequantize(arithmetic.quantize(y, means), means)
        real_means = None if means is None else arithmetic.real(means)
        _, y_likelihoods = self.gaussian_conditional(y, arithmetic.real(scales), means=real_means)
        return {"x_hat": self.g_s(arithmetic.real(y_hat)), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    @staticmethod
    def infer_kwargs(state_dict: dict[str, Tensor]) -> dict[str, int]:
        """Architecture arguments implied by a state dict (so checkpoints of any N/M load)."""
        return {"N": state_dict["g_a.0.weight"].size(0), "M": state_dict["g_a.6.weight"].size(0)}


class FactorizedPrior(PaddedCompressAIMixin, cm.FactorizedPrior):
    """Ballé 2018's factorized prior: y itself goes through the bottleneck (no network steers its coder)."""

    def encode_image(self, x: Tensor, arithmetic: Arithmetic) -> tuple[list[bytes], list[Tensor]]:
        symbols, string = self.encode_bottleneck(self.g_a(x), arithmetic)
        return [string], [symbols]

    def decode_image(self, strings: list[bytes], padded: tuple[int, int], arithmetic: Arithmetic) -> tuple[Tensor, list[Tensor]]:
        symbols = self.decode_bottleneck(strings[0], (padded[0] // 16, padded[1] // 16), arithmetic)
        return arithmetic.real(arithmetic.dequantize(symbols, arithmetic.bottleneck_medians)), [symbols]

    def coded_forward(self, x: Tensor, arithmetic: Arithmetic) -> dict[str, Any]:
        y = self.g_a(x)
        _, y_likelihoods = self.entropy_bottleneck(y)
        medians = arithmetic.bottleneck_medians
        y_hat = arithmetic.dequantize(arithmetic.quantize(y, medians), medians)
        return {"x_hat": self.g_s(arithmetic.real(y_hat)), "likelihoods": {"y": y_likelihoods}}


class ScaleHyperprior(PaddedCompressAIMixin, cm.ScaleHyperprior):
    def hyper_input(self, y: Tensor) -> Tensor:
        return torch.abs(y)

    def split_parameters(self, params: Tensor) -> tuple[Tensor, Tensor | None]:
        return params, None


class MeanScaleHyperprior(PaddedCompressAIMixin, cm.MeanScaleHyperprior):
    pass


class JointAutoregressiveHierarchicalPriors(PaddedCompressAIMixin, cm.JointAutoregressiveHierarchicalPriors):
    """Minnen 2018's joint autoregressive + hierarchical prior.

    CompressAI's eval-mode ``forward`` rounds ``y`` without the predicted means, but its
    coder codes ``round(y - μ) + μ`` with μ from the *serial* context: the two
    reconstructions differ. Here eval-mode ``forward`` runs the serial quantisation
    the coder uses, so its ``x_hat`` is exactly the decoded image and its likelihoods
    are those of the coded symbols (slower: one pass per latent position).

    The serial coder is CompressAI's, float for float and byte for byte in the float
    arithmetic: raster order, the same convolutions on the same 5x5 crops and 1x1 positions,
    the same rounding. What it drops is the per-position overhead around them: the CDF tables
    cross into the rANS coder trimmed, and only the rows a position uses
    (:class:`~mocodec.codecs.rans.RansTables`),
    the CDF indexes come from one comparison instead of one per table entry, and the encoder's
    symbols are collected in a tensor and converted once. In the exact arithmetic the context
    and entropy-parameter networks run on integers too, since decoded latents feed them.
    """

    context_kernel = 5

    def coded_forward(self, x: Tensor, arithmetic: Arithmetic) -> dict[str, Any]:
        if arithmetic.name == FLOAT:
            self.ensure_entropy_tables()  # CompressAI's serial pass reads the scale table (the exact one has its own)
        y = self.g_a(x)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        z_hat = arithmetic.dequantize(arithmetic.quantize(z, arithmetic.bottleneck_medians), arithmetic.bottleneck_medians)
        params = arithmetic.network(self.h_s)(z_hat)
        y_hat = torch.cat([self.encode_serially(y[i : i + 1], params[i : i + 1], arithmetic)[0] for i in range(y.size(0))])
        # The likelihoods of the coded symbols, estimated with the float networks on the decoded latent.
        y_hat = arithmetic.real(y_hat)
        ctx = self.context_prediction(y_hat)
        scales_hat, means_hat = self.entropy_parameters(torch.cat((arithmetic.real(params), ctx), dim=1)).chunk(2, 1)
        _, y_likelihoods = self.gaussian_conditional(y, scales_hat, means=means_hat)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def position_gaussian(self, y_hat: Tensor, params: Tensor, h: int, w: int, arithmetic: Arithmetic) -> tuple[Tensor, Tensor]:
        """Scales and means (1 x M x 1 x 1) at latent position (h, w), from the positions decoded before it.

        ``y_hat`` is padded by ``context_kernel // 2`` (the positions not decoded yet are zeros or masked out).
        """
        k = self.context_kernel
        ctx = arithmetic.context_at(self.context_prediction, y_hat[:, :, h : h + k, w : w + k])
        return arithmetic.network(self.entropy_parameters)(torch.cat((params[:, :, h : h + 1, w : w + 1], ctx), dim=1)).chunk(2, 1)

    def encode_serially(self, y: Tensor, params: Tensor, arithmetic: Arithmetic) -> tuple[Tensor, Tensor, Tensor]:
        """Quantise one image's ``y`` (1 x M x H x W) position by position in raster order.

        Returns ŷ (1 x M x H x W, the arithmetic's representation), then the symbols and their
        CDF indexes (H·W x M, int32) in the order they are coded.
        """
        pad = self.context_kernel // 2
        height, width = y.shape[-2:]
        y_hat = F.pad(params.new_zeros(y.shape), (pad, pad, pad, pad))  # float32, or float64 integers (exact)
        symbols = torch.empty(height * width, y.size(1), dtype=torch.int32)
        indexes = torch.empty_like(symbols)
        for position, (h, w) in enumerate(itertools.product(range(height), range(width))):
            scales, means = (p.flatten(1) for p in self.position_gaussian(y_hat, params, h, w, arithmetic))
            quantized = arithmetic.quantize(y[:, :, h, w], means)
            y_hat[:, :, h + pad, w + pad] = arithmetic.dequantize(quantized, means)
            symbols[position] = quantized[0]
            indexes[position] = arithmetic.indexes(scales)[0]
        return y_hat[..., pad:-pad, pad:-pad], symbols, indexes

    def encode_image(self, x: Tensor, arithmetic: Arithmetic) -> tuple[list[bytes], list[Tensor]]:
        y = self.g_a(x)
        z_symbols, z_string = self.encode_bottleneck(self.h_a(y), arithmetic)
        params = arithmetic.network(self.h_s)(arithmetic.dequantize(z_symbols, arithmetic.bottleneck_medians))
        _, symbols, indexes = self.encode_serially(y, params, arithmetic)
        return [arithmetic.gaussian_tables.encode(symbols, indexes), z_string], [symbols, z_symbols]

    def decode_image(self, strings: list[bytes], padded: tuple[int, int], arithmetic: Arithmetic) -> tuple[Tensor, list[Tensor]]:
        """CompressAI's serial decoder: ŷ filled position by position, each from the positions decoded before it."""
        y_string, z_string = strings
        z_symbols = self.decode_bottleneck(z_string, (padded[0] // 64, padded[1] // 64), arithmetic)
        params = arithmetic.network(self.h_s)(arithmetic.dequantize(z_symbols, arithmetic.bottleneck_medians))
        pad, (height, width) = self.context_kernel // 2, (padded[0] // 16, padded[1] // 16)
        tables = arithmetic.gaussian_tables
        decoder = tables.decoder(y_string)
        y_hat = F.pad(params.new_zeros(1, self.M, height, width), (pad, pad, pad, pad))
        symbols = torch.empty(height * width, self.M, dtype=torch.int32)
        for position, (h, w) in enumerate(itertools.product(range(height), range(width))):
            scales, means = self.position_gaussian(y_hat, params, h, w, arithmetic)
            decoded = tables.decode(decoder, arithmetic.indexes(scales))
            y_hat[:, :, h + pad : h + pad + 1, w + pad : w + pad + 1] = arithmetic.dequantize(decoded, means)
            symbols[position] = decoded.flatten()
        return arithmetic.real(y_hat[..., pad:-pad, pad:-pad]), [symbols, z_symbols]


# Registry name -> architecture; the registry entries are declared in :mod:`mocodec.codecs.zoo`.
ARCHITECTURES: dict[str, type[PaddedCompressAIMixin]] = {
    "bmshj2018-factorized": FactorizedPrior,
    "bmshj2018-hyperprior": ScaleHyperprior,
    "mbt2018-mean": MeanScaleHyperprior,
    "mbt2018": JointAutoregressiveHierarchicalPriors,
}


# mocodec's own sizes of these architectures: registry name -> (architecture, {quality: (N, M)}).
# mbt2018-mean-small is the mean-scale hyperprior at a size two CPU cores train in hours
# (1.76 M parameters); its weights, trained by mocodec, ship with the package.
OWN_SIZES: dict[str, tuple[str, dict[int, tuple[int, int]]]] = {
    "mbt2018-mean-small": ("mbt2018-mean", dict.fromkeys(range(1, 5), (64, 96))),
}


def compressai_codec(name: str, quality: int, N: int | None = None, M: int | None = None, **kwargs: Any) -> PaddedCompressAIMixin:
    """Codec ``name`` at ``quality`` with the (N, M) of its table for that quality, unless ``N``/``M`` are given.

    The table is CompressAI's for its architectures, :data:`OWN_SIZES` for mocodec's sizes of them.
    """
    architecture, sizes = OWN_SIZES[name] if name in OWN_SIZES else (name, COMPRESSAI_CFGS[name])
    if quality not in sizes:
        raise ConfigError(f"quality {quality} is out of range for {name}: use {min(sizes)}-{max(sizes)}")
    default_n, default_m = sizes[quality]
    codec = ARCHITECTURES[architecture](N or default_n, M or default_m, **kwargs)
    codec.set_identity(name, quality)
    return codec


def compressai_url(name: str, quality: int, metric: str = "mse") -> str:
    """The published CompressAI weights for (architecture, metric, quality)."""
    try:
        return COMPRESSAI_URLS[name][metric][quality]
    except KeyError:
        raise ConfigError(f"CompressAI publishes no {metric} weights for {name} quality {quality}") from None
