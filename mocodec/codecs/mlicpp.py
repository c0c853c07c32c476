"""MLIC++: linear-complexity multi-reference entropy modelling (Jiang et al., ACM TOMM 2025).

The latent ``y = g_a(x)`` (M channels, stride 16) is split into ``num_slices`` channel
slices, and each slice into checkerboard anchors and non-anchors. Each half is coded
with a Gaussian whose mean and scale come from several references:

* the hyperprior ``h_s(ẑ)`` (``z = h_a(y)``, stride 64, factorized prior);
* channel context: a CNN over the slices decoded so far;
* global inter-slice context: linear attention over the slices decoded so far;
* local spatial context (non-anchors only): window attention over the slice's anchors;
* global intra-slice context (non-anchors only): the previous slice's anchor/non-anchor
  similarity applied to the current slice's anchors, by linear attention;

and latent residual prediction (LRP) corrects each decoded half by ``0.5·tanh(·)`` of a
CNN over the hyperprior means and everything decoded so far. Since the references of a
slice depend only on what is already decoded, coding is two passes per slice.

One function, :meth:`MLICPlusPlusModel.code_slices`, runs that order for ``forward``,
the encoder and the decoder alike; only the quantiser differs (:class:`SteQuantizer`,
:class:`RansEncoderQuantizer`, :class:`RansDecoderQuantizer`), so the decoder sees
exactly the contexts the encoder saw, and eval-mode ``forward`` computes exactly the
decoded reconstruction.

The architecture and its widths follow the official implementation
(github.com/JiangWeibeta/MLIC, the 2024-04 release): N=192, M=320, 10 slices give
83,501,408 parameters. Its checkpoints load through :func:`convert_official_state_dict`.

Importing this module imports CompressAI (seconds): :mod:`mocodec.codecs.zoo` declares the
``mlicpp`` and ``mlicpp-tiny`` registry entries and imports it when one is built.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import conv3x3, subpel_conv3x3
from compressai.models import CompressionModel
from compressai.ops import quantize_ste
from torch import Tensor, nn

from mocodec.codecs.arithmetic import FLOAT
from mocodec.codecs.hyperprior import PaddedCompressAIMixin
from mocodec.codecs.layers import (
    ANCHOR,
    NON_ANCHOR,
    CheckerboardWindowAttention,
    GlobalInterContext,
    GlobalIntraContext,
    Part,
    ResidualBlock,
    ResidualBlockUpsample,
    ResidualBlockWithStride,
    gather,
    keep,
    merge,
    scatter,
)
from mocodec.codecs.rans import RansTables, scale_indexes
from mocodec.errors import ConfigError, WeightsError

# The published MSE models, by quality: the rate-distortion λ each was trained with.
MSE_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)

# Channels per head of the global inter-slice attention (the official ``dim // 32`` heads).
INTER_HEAD_CHANNELS = 32


def conv_stack(widths: list[int], kernel_size: int) -> nn.Sequential:
    """Convolutions ``widths[0] -> widths[1] -> ...`` with GELU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        if i:
            layers.append(nn.GELU())
        layers.append(nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2))
    return nn.Sequential(*layers)


class LatentResidualPrediction(nn.Sequential):
    """LRP (Minnen & Singh, ICIP 2020): predicts the rounding error of ŷ, bounded to ±0.5."""

    def __init__(self, in_ch: int, out_ch: int, hidden_width: int) -> None:
        super().__init__(*conv_stack([in_ch, hidden_width * 7 // 10, hidden_width * 2 // 5, out_ch], 3))

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * torch.tanh(super().forward(x))


class Quantizer(Protocol):
    """Turns one checkerboard half of a slice into its decoded values (zeros at the other half).

    ``y`` is the slice (None when decoding: the decoder does not have it), ``scales``
    and ``means`` the predicted Gaussian parameters over the whole slice.
    """

    def __call__(self, y: Tensor | None, scales: Tensor, means: Tensor, part: Part) -> Tensor: ...


class SteQuantizer:
    """``forward``: ``ŷ = round(y − μ) + μ``, with a straight-through gradient (MLIC++'s training)."""

    def __call__(self, y: Tensor | None, scales: Tensor, means: Tensor, part: Part) -> Tensor:
        assert y is not None, "forward() quantises a known latent"
        return keep(quantize_ste(y - means) + means, part)


class RansEncoderQuantizer:
    """Encoder: rounds ``y − μ`` to integer symbols and queues them (and their CDF indexes) for one rANS string."""

    def __init__(self, gaussian_conditional: GaussianConditional) -> None:
        self.gaussian_conditional = gaussian_conditional
        self.tables = RansTables.of(gaussian_conditional)
        self.symbols: list[Tensor] = []
        self.indexes: list[Tensor] = []

    def __call__(self, y: Tensor | None, scales: Tensor, means: Tensor, part: Part) -> Tensor:
        assert y is not None, "the encoder quantises a known latent"
        means_part = gather(means, part)
        symbols = self.gaussian_conditional.quantize(gather(y, part), "symbols", means_part)
        self.symbols.append(symbols.flatten())
        self.indexes.append(scale_indexes(self.gaussian_conditional, gather(scales, part)).flatten())
        return scatter(symbols.to(means.dtype) + means_part, part, y.shape[-2:])

    def flush(self) -> bytes:
        return self.tables.encode(torch.cat(self.symbols), torch.cat(self.indexes))


class RansDecoderQuantizer:
    """Decoder: reads the symbols back from the rANS string, in the encoder's order."""

    def __init__(self, gaussian_conditional: GaussianConditional, string: bytes) -> None:
        self.gaussian_conditional = gaussian_conditional
        self.tables = RansTables.of(gaussian_conditional)
        self.decoder = self.tables.decoder(string)
        self.symbols: list[Tensor] = []  # as decoded, in the encoder's order (for the latent check)

    def __call__(self, y: Tensor | None, scales: Tensor, means: Tensor, part: Part) -> Tensor:
        means_part = gather(means, part)
        symbols = self.tables.decode(self.decoder, scale_indexes(self.gaussian_conditional, gather(scales, part)))
        self.symbols.append(symbols.flatten())
        return scatter(symbols.to(means_part) + means_part, part, means.shape[-2:])


class SliceEntropyModel(nn.Module):
    """The networks that predict slice ``index``'s Gaussians, and its two-pass coding order.

    ``M`` is the latent's channel count, ``channels`` the slice's; ``hidden_width``
    sets the entropy-parameter widths (published: 320-256-128), from which the
    channel-context (192-128) and LRP (224-128) widths are scaled.
    """

    def __init__(self, index: int, channels: int, M: int, hidden_width: int) -> None:
        super().__init__()
        decoded = index * channels  # channels of the slices decoded before this one
        self.local_context = CheckerboardWindowAttention(channels)
        if index:
            self.channel_context = conv_stack([decoded, hidden_width * 3 // 5, hidden_width * 2 // 5, 4 * channels], 3)
            self.inter_context = GlobalInterContext(decoded, 2 * channels, heads=max(1, decoded // INTER_HEAD_CHANNELS))
            self.intra_context = GlobalIntraContext(channels)
        # Inputs: hyperprior (2M), + inter (2C) and channel (4C) context; non-anchors add local (2C) and intra (2C).
        anchor_in = 2 * M + (6 * channels if index else 0)
        non_anchor_in = 2 * M + (10 * channels if index else 2 * channels)
        widths = [hidden_width, hidden_width * 4 // 5, hidden_width * 2 // 5, 2 * channels]
        self.anchor_parameters = conv_stack([anchor_in, *widths], 1)
        self.non_anchor_parameters = conv_stack([non_anchor_in, *widths], 1)
        self.anchor_lrp = LatentResidualPrediction(M + decoded + channels, channels, hidden_width)
        self.non_anchor_lrp = LatentResidualPrediction(M + decoded + channels, channels, hidden_width)

    def channel_contexts(self, decoded: list[Tensor]) -> list[Tensor]:
        """References in the slices decoded so far: global inter-slice, then channel-wise."""
        if not decoded:
            return []
        previous = torch.cat(decoded, dim=1)
        return [self.inter_context(previous), self.channel_context(previous)]

    def spatial_contexts(self, anchors: Tensor, decoded: list[Tensor]) -> list[Tensor]:
        """References in this slice's decoded anchors: local window, then global intra-slice."""
        local = self.local_context(anchors)
        return [local, self.intra_context(decoded[-1], anchors)] if decoded else [local]

    def forward(self, y: Tensor | None, hyper_params: Tensor, decoded: list[Tensor], quantize: Quantizer) -> tuple[Tensor, Tensor, Tensor]:
        """Code this slice: anchors, then non-anchors. Returns ``(ŷ_slice, scales, means)``."""
        hyper_means = hyper_params.chunk(2, dim=1)[1]
        channel = self.channel_contexts(decoded)

        scales_a, means_a = self.anchor_parameters(torch.cat([*channel, hyper_params], dim=1)).chunk(2, dim=1)
        anchors = quantize(y, scales_a, means_a, ANCHOR)
        anchors = anchors + keep(self.anchor_lrp(torch.cat([hyper_means, *decoded, anchors], dim=1)), ANCHOR)

        spatial = self.spatial_contexts(anchors, decoded)
        scales_n, means_n = self.non_anchor_parameters(torch.cat([*spatial, *channel, hyper_params], dim=1)).chunk(2, dim=1)
        y_hat = anchors + quantize(y, scales_n, means_n, NON_ANCHOR)
        y_hat = y_hat + keep(self.non_anchor_lrp(torch.cat([hyper_means, *decoded, y_hat], dim=1)), NON_ANCHOR)
        return y_hat, merge(scales_a, scales_n), merge(means_a, means_n)


def check_architecture(N: int, M: int, num_slices: int, hidden_width: int) -> None:
    """Refuse sizes the slice networks cannot be built with, naming the constraint."""
    if min(N, M, num_slices, hidden_width) < 1:
        raise ConfigError(f"MLIC++ sizes must be positive, got N={N} M={M} num_slices={num_slices} hidden_width={hidden_width}")
    if M % num_slices or (M // num_slices) % 2:
        raise ConfigError(f"MLIC++ needs M divisible into num_slices slices of an even channel count, got M={M}, num_slices={num_slices}")
    for i in range(1, num_slices):
        decoded = i * (M // num_slices)
        heads = max(1, decoded // INTER_HEAD_CHANNELS)
        if decoded % heads:
            raise ConfigError(
                f"MLIC++ slice {i} sees {decoded} decoded channels, which do not split into {heads} attention heads "
                f"of ~{INTER_HEAD_CHANNELS}; choose M/num_slices as a multiple of {INTER_HEAD_CHANNELS}"
            )
    if hidden_width < 5:
        raise ConfigError(f"MLIC++ hidden_width must be at least 5, got {hidden_width}")


class MLICPlusPlusModel(CompressionModel):
    """MLIC++ with CompressAI's conventions: inputs a multiple of 64, ``decompress`` takes ẑ's shape.

    Args:
        N: channels of the transforms and of the hyper-latent z.
        M: channels of the latent y.
        num_slices: channel slices of y (``M`` must divide into them).
        hidden_width: width of the entropy-parameter networks (see :class:`SliceEntropyModel`).
    """

    def __init__(self, N: int = 192, M: int = 320, num_slices: int = 10, hidden_width: int = 320) -> None:
        super().__init__()
        check_architecture(N, M, num_slices, hidden_width)
        self.N, self.M, self.num_slices = N, M, num_slices
        self.slice_channels = M // num_slices
        self.g_a = nn.Sequential(
            ResidualBlockWithStride(3, N),
            ResidualBlock(N, N),
            ResidualBlockWithStride(N, N),
            ResidualBlock(N, N),
            ResidualBlockWithStride(N, N),
            ResidualBlock(N, N),
            conv3x3(N, M, stride=2),
        )
        self.g_s = nn.Sequential(
            ResidualBlock(M, M),
            ResidualBlockUpsample(M, N),
            ResidualBlock(N, N),
            ResidualBlockUpsample(N, N),
            ResidualBlock(N, N),
            ResidualBlockUpsample(N, N),
            ResidualBlock(N, N),
            subpel_conv3x3(N, 3, 2),
        )
        self.h_a = nn.Sequential(
            conv3x3(M, N),
            nn.GELU(),
            conv3x3(N, N),
            nn.GELU(),
            conv3x3(N, N, stride=2),
            nn.GELU(),
            conv3x3(N, N),
            nn.GELU(),
            conv3x3(N, N, stride=2),
        )
        self.h_s = nn.Sequential(
            conv3x3(N, M),
            nn.GELU(),
            subpel_conv3x3(M, M, 2),
            nn.GELU(),
            conv3x3(M, M * 3 // 2),
            nn.GELU(),
            subpel_conv3x3(M * 3 // 2, M * 3 // 2, 2),
            nn.GELU(),
            conv3x3(M * 3 // 2, 2 * M),
        )
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        self.slices = nn.ModuleList(SliceEntropyModel(i, self.slice_channels, M, hidden_width) for i in range(num_slices))

    def code_slices(self, y: Tensor | None, hyper_params: Tensor, quantize: Quantizer) -> tuple[Tensor, Tensor, Tensor]:
        """Every slice in order, each in two passes: ``(ŷ, scales, means)`` of the whole latent."""
        y_slices = y.chunk(self.num_slices, dim=1) if y is not None else [None] * self.num_slices
        decoded: list[Tensor] = []
        scales, means = [], []
        for slice_model, y_slice in zip(self.slices, y_slices):
            y_hat_slice, slice_scales, slice_means = slice_model(y_slice, hyper_params, decoded, quantize)
            decoded.append(y_hat_slice)
            scales.append(slice_scales)
            means.append(slice_means)
        return torch.cat(decoded, dim=1), torch.cat(scales, dim=1), torch.cat(means, dim=1)

    def forward(self, x: Tensor) -> dict[str, Any]:
        y = self.g_a(x)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        # ẑ as the coder produces it (rounded around the medians), with a straight-through gradient.
        z_medians = self.entropy_bottleneck._get_medians()
        z_hat = quantize_ste(z - z_medians) + z_medians
        y_hat, scales, means = self.code_slices(y, self.h_s(z_hat), SteQuantizer())
        _, y_likelihoods = self.gaussian_conditional(y, scales, means)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def encode_image(self, x: Tensor) -> tuple[list[bytes], list[Tensor]]:
        """One image's strings ``[y, z]`` and the symbols they code (ẑ's, then ŷ's in coding order)."""
        y = self.g_a(x)
        z = self.h_a(y)
        z_symbols = self.entropy_bottleneck.quantize(z, "symbols", self.entropy_bottleneck._get_medians())
        z_string = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_string, z.shape[-2:])  # the decoder's ẑ, exactly
        encoder = RansEncoderQuantizer(self.gaussian_conditional)
        self.code_slices(y, self.h_s(z_hat), encoder)
        return [encoder.flush(), z_string[0]], [z_symbols, *encoder.symbols]

    def decode_image(self, y_string: bytes, z_string: bytes, shape: tuple[int, int]) -> tuple[Tensor, list[Tensor]]:
        """One image's ŷ and the symbols decoded, from its strings and ẑ's shape."""
        z_hat = self.entropy_bottleneck.decompress([z_string], shape)
        z_symbols = self.entropy_bottleneck.quantize(z_hat, "symbols", self.entropy_bottleneck._get_medians())
        decoder = RansDecoderQuantizer(self.gaussian_conditional, y_string)
        y_hat, _, _ = self.code_slices(None, self.h_s(z_hat), decoder)
        return y_hat, [z_symbols, *decoder.symbols]

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict[str, Any]:
        coded = [self.encode_image(image)[0] for image in x.split(1)]
        return {"strings": [list(group) for group in zip(*coded)], "shape": (x.size(2) // 64, x.size(3) // 64)}

    @torch.no_grad()
    def decompress(self, strings: list, shape: tuple[int, int]) -> dict[str, Tensor]:
        y_strings, z_strings = strings
        y_hats = [self.decode_image(y, z, shape)[0] for y, z in zip(y_strings, z_strings, strict=True)]
        return {"x_hat": torch.cat([self.g_s(y_hat).clamp_(0, 1) for y_hat in y_hats])}


class MLICPlusPlus(PaddedCompressAIMixin, MLICPlusPlusModel):
    """MLIC++ under mocodec's codec contract: any image size, ``shape`` is the image's.

    Float arithmetic only: its contexts (window and linear attention, GELU, tanh) have no
    integer-exact form here, so its files are bound to the arithmetic that wrote them and say so
    (:mod:`mocodec.codecs.arithmetic`); the strings are the official implementation's.
    """

    arithmetics = (FLOAT,)
    arithmetic = FLOAT

    def coded_forward(self, x: Tensor, arithmetic: Any) -> dict[str, Any]:
        """Eval-mode ``forward`` codes as the coder does already (the same :meth:`code_slices`)."""
        return MLICPlusPlusModel.forward(self, x)

    def encode_image(self, x: Tensor, arithmetic: Any) -> tuple[list[bytes], list[Tensor]]:
        return MLICPlusPlusModel.encode_image(self, x)

    def decode_image(self, strings: list[bytes], padded: tuple[int, int], arithmetic: Any) -> tuple[Tensor, list[Tensor]]:
        return MLICPlusPlusModel.decode_image(self, *strings, (padded[0] // 64, padded[1] // 64))

    @staticmethod
    def infer_kwargs(state_dict: dict[str, Tensor]) -> dict[str, int]:
        """Architecture arguments implied by a (mocodec-layout) state dict."""
        num_slices = sum(1 for k in state_dict if re.fullmatch(r"slices\.\d+\.anchor_lrp\.0\.weight", k))
        if not num_slices:
            raise KeyError("slices.0.anchor_lrp.0.weight")
        return {
            "N": state_dict["g_a.0.conv1.weight"].size(0),
            "M": state_dict["g_a.6.weight"].size(0),
            "num_slices": num_slices,
            "hidden_width": state_dict["slices.0.anchor_parameters.0.weight"].size(0),
        }


# Official checkpoint key -> mocodec key (regular expression, replacement); see docs/mlicpp.md.
OFFICIAL_KEY_MAP: tuple[tuple[str, str], ...] = (
    (r"^g_a\.analysis_transform\.", "g_a."),
    (r"^g_s\.synthesis_transform\.", "g_s."),
    (r"^h_a\.reduction\.", "h_a."),
    (r"^h_s\.increase\.", "h_s."),
    (r"^local_context\.(\d+)\.", r"slices.\1.local_context."),
    (r"^channel_context\.(\d+)\.fushion\.", r"slices.\1.channel_context."),
    (r"^global_inter_context\.(\d+)\.", r"slices.\1.inter_context."),
    (r"^global_intra_context\.(\d+)\.", r"slices.\1.intra_context."),
    (r"^entropy_parameters_anchor\.(\d+)\.fusion\.", r"slices.\1.anchor_parameters."),
    (r"^entropy_parameters_nonanchor\.(\d+)\.fusion\.", r"slices.\1.non_anchor_parameters."),
    (r"^lrp_anchor\.(\d+)\.lrp_transform\.", r"slices.\1.anchor_lrp."),
    (r"^lrp_nonanchor\.(\d+)\.lrp_transform\.", r"slices.\1.non_anchor_lrp."),
)
_OFFICIAL_KEY_MAP = tuple((re.compile(pattern), replacement) for pattern, replacement in OFFICIAL_KEY_MAP)


def convert_official_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename the official implementation's keys to mocodec's; mocodec keys pass unchanged.

    The window attention's ``relative_position_index`` is dropped: it is rebuilt from the
    window size. Checkpoints of the superseded 2023-09 layout (a four-layer LRP) are refused.
    """
    if any(re.match(r"lrp_(non)?anchor\.\d+\.lrp_transform\.6\.", k) for k in state_dict):
        raise WeightsError(
            "checkpoint has the superseded 2023-09 MLIC++ layout (LatentResidualPredictionOld); "
            "use the 2024-04 MLIC++ release (83.5 M parameters) from github.com/JiangWeibeta/MLIC"
        )
    converted = {}
    for key, value in state_dict.items():
        if key.endswith(".relative_position_index"):
            continue
        for pattern, replacement in _OFFICIAL_KEY_MAP:
            key, found = pattern.subn(replacement, key)
            if found:
                break
        converted[key] = value
    return converted


# mocodec key prefix (inside ``slices.I.`` for the per-slice modules) -> the official one; the inverse of OFFICIAL_KEY_MAP.
_TO_OFFICIAL: tuple[tuple[str, str], ...] = (
    ("g_a.", "g_a.analysis_transform."),
    ("g_s.", "g_s.synthesis_transform."),
    ("h_a.", "h_a.reduction."),
    ("h_s.", "h_s.increase."),
    ("local_context.", "local_context.{i}."),
    ("channel_context.", "channel_context.{i}.fushion."),
    ("inter_context.", "global_inter_context.{i}."),
    ("intra_context.", "global_intra_context.{i}."),
    ("anchor_parameters.", "entropy_parameters_anchor.{i}.fusion."),
    ("non_anchor_parameters.", "entropy_parameters_nonanchor.{i}.fusion."),
    ("anchor_lrp.", "lrp_anchor.{i}.lrp_transform."),
    ("non_anchor_lrp.", "lrp_nonanchor.{i}.lrp_transform."),
)


def official_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """mocodec's MLIC++ weights under the official implementation's keys (what its ``load_state_dict`` takes,
    but for the window attention's ``relative_position_index`` buffers, which it builds itself)."""
    out = {}
    for key, value in state_dict.items():
        index = None
        if key.startswith("slices."):
            _, index, key = key.split(".", 2)
        for ours, theirs in _TO_OFFICIAL:
            if key.startswith(ours):
                key = theirs.format(i=index) + key[len(ours) :]
                break
        out[key] = value
    return out


def mlicpp_codec(name: str, quality: int, **kwargs: int) -> MLICPlusPlus:
    """An MLIC++ codec registered as ``name`` at ``quality`` (1-6, the published λ); ``kwargs``: its widths."""
    if not 1 <= quality <= len(MSE_LAMBDAS):
        raise ConfigError(f"quality {quality} is out of range for {name}: use 1-{len(MSE_LAMBDAS)}")
    codec = MLICPlusPlus(**kwargs)
    codec.set_identity(name, quality)
    return codec
