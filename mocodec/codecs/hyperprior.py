"""The scale-hyperprior family from CompressAI, padded to their stride (Ballé 2018, Minnen 2018).

The transforms and entropy models are CompressAI's; what mocodec adds is the padding
contract of :mod:`mocodec.codecs.base`, CDF tables that are always ready to code, and
:class:`RansTables`, the Gaussian conditional's tables in the form CompressAI's rANS coder
takes, prepared once per image (MLIC++ codes with them too).
Qualities 1-8 use CompressAI's (N, M) table, mocodec's own sizes (:data:`OWN_SIZES`) their own;
``N``/``M`` override them (tiny test models).
Importing this module imports CompressAI (seconds): :mod:`mocodec.codecs.zoo` imports it
when the first of these codecs is built.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from compressai import models as cm
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.zoo.image import cfgs as COMPRESSAI_CFGS
from compressai.zoo.image import model_urls as COMPRESSAI_URLS
from torch import Tensor

from mocodec.codecs.base import CodecIdentity, check_input, pad_to_multiple, padded_size
from mocodec.errors import ConfigError


class RansTables:
    """A Gaussian conditional's CDF tables and scale thresholds, prepared once per image for CompressAI's rANS coder.

    CompressAI's coder takes the tables as Python lists and converts all of them to C++ on
    every call: for the default scale table, 64 rows padded to the longest (~3,100 entries),
    some 200,000 integers, paid once per position by a serial decoder. The coder reads row
    ``i`` only for symbols of index ``i``, and only its first ``cdf_length[i]`` entries, so
    the rows here are trimmed to their lengths and a decoding call gets only the rows its
    indexes use (renumbered): the symbols and the bytes are those of the full tables.
    """

    def __init__(self, gaussian_conditional: GaussianConditional) -> None:
        lengths = gaussian_conditional.cdf_length.reshape(-1).int().tolist()
        self.cdfs = [row[:n] for row, n in zip(gaussian_conditional.quantized_cdf.tolist(), lengths)]
        self.cdf_lengths = lengths
        self.offsets = gaussian_conditional.offset.reshape(-1).int().tolist()
        self.scale_bound = gaussian_conditional.lower_bound_scale.bound
        self.thresholds = gaussian_conditional.scale_table[:-1]

    def indexes(self, scales: Tensor) -> Tensor:
        """The CDF row of every scale (int32, the shape of ``scales``): ``build_indexes``, vectorised.

        Row ``i`` is the number of thresholds (all table entries but the last) below the scale,
        counted as CompressAI counts it: the last row minus the thresholds with ``scale <= t``.
        """
        scales = torch.max(scales, self.scale_bound)
        at_or_below = (scales.unsqueeze(-1) <= self.thresholds).sum(dim=-1, dtype=torch.int32)
        return len(self.thresholds) - at_or_below

    def encode(self, symbols: Tensor, indexes: Tensor) -> bytes:
        """One rANS string of ``symbols`` (flattened), each coded with the CDF row of its index."""
        encoder = BufferedRansEncoder()
        encoder.encode_with_indexes(symbols.flatten().tolist(), indexes.flatten().tolist(), self.cdfs, self.cdf_lengths, self.offsets)
        return encoder.flush()

    def decoder(self, string: bytes) -> RansDecoder:
        decoder = RansDecoder()
        decoder.set_stream(string)
        return decoder

    def decode(self, decoder: RansDecoder, indexes: Tensor) -> Tensor:
        """The next ``indexes.numel()`` symbols of ``decoder``'s string, int32, the shape of ``indexes``."""
        # Only the rows these symbols use cross into C++: index i becomes its rank among them.
        rows, ranks = torch.unique(indexes, return_inverse=True)
        rows = rows.tolist()
        symbols = decoder.decode_stream(
            ranks.flatten().tolist(),
            [self.cdfs[i] for i in rows],
            [self.cdf_lengths[i] for i in rows],
            [self.offsets[i] for i in rows],
        )
        return torch.tensor(symbols, dtype=torch.int32).view(indexes.shape)


class PaddedCompressAIMixin(CodecIdentity):
    """Pads inputs to ``stride``, crops outputs back, and keeps CDF tables ready for coding."""

    stride = 64  # total downsampling of the hyper-latent z
    shape_stride = 64  # downsampling of the latent whose shape CompressAI's decompress takes

    def forward(self, x: Tensor) -> dict[str, Any]:
        h, w = x.shape[-2:]
        out = super().forward(pad_to_multiple(x, self.stride))
        out["x_hat"] = out["x_hat"][..., :h, :w]
        return out

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
        out = super().compress(pad_to_multiple(x, self.stride))
        return {"strings": out["strings"], "shape": tuple(x.shape[-2:])}

    @torch.no_grad()
    def decompress(self, strings: list, shape: tuple[int, int]) -> dict[str, Tensor]:
        self.ensure_entropy_tables()
        h, w = shape
        ph, pw = padded_size((h, w), self.stride)
        # The rANS decoder reads at most one 32-bit word per symbol and does not check the
        # string's end: zero padding for the largest symbol count keeps a damaged or
        # mismatched string's reads inside our own buffer (never past it, never a crash).
        max_symbols = max(self.N, self.M) * (ph // 16) * (pw // 16)
        strings = [[s + bytes(4 * max_symbols + 64) for s in group] for group in strings]
        out = super().decompress(strings, (ph // self.shape_stride, pw // self.shape_stride))
        return {"x_hat": out["x_hat"][..., :h, :w]}

    @staticmethod
    def infer_kwargs(state_dict: dict[str, Tensor]) -> dict[str, int]:
        """Architecture arguments implied by a state dict (so checkpoints of any N/M load)."""
        return {"N": state_dict["g_a.0.weight"].size(0), "M": state_dict["g_a.6.weight"].size(0)}


class FactorizedPrior(PaddedCompressAIMixin, cm.FactorizedPrior):
    shape_stride = 16  # decompress takes y's shape


class ScaleHyperprior(PaddedCompressAIMixin, cm.ScaleHyperprior):
    pass


class MeanScaleHyperprior(PaddedCompressAIMixin, cm.MeanScaleHyperprior):
    pass


class JointAutoregressiveHierarchicalPriors(PaddedCompressAIMixin, cm.JointAutoregressiveHierarchicalPriors):
    """Minnen 2018's joint autoregressive + hierarchical prior.

    CompressAI's eval-mode ``forward`` rounds ``y`` without the predicted means, but its
    coder codes ``round(y - μ) + μ`` with μ from the *serial* context: the two
    reconstructions differ. Here eval-mode ``forward`` runs the serial quantisation
    the coder uses, so its ``x_hat`` is exactly the decoded image and its likelihoods
    are those of the coded symbols (slower: one pass per latent position).

    The serial coder is CompressAI's, float for float and byte for byte: raster order, the
    same convolutions on the same 5x5 crops and 1x1 positions, the same rounding. What it
    drops is the per-position overhead around them: the CDF tables cross into the rANS
    coder trimmed, and only the rows a position uses (:class:`RansTables`), the CDF indexes
    come from one comparison instead of one per table entry, and the encoder's symbols are
    collected in a tensor and converted once.
    """

    context_kernel = 5

    def forward(self, x: Tensor) -> dict[str, Any]:
        if self.training:
            return super().forward(x)
        h, w = x.shape[-2:]
        self.ensure_entropy_tables()
        y = self.g_a(pad_to_multiple(x, self.stride))
        z_hat, z_likelihoods = self.entropy_bottleneck(self.h_a(y))
        params = self.h_s(z_hat)
        y_hat = self.serial_y_hat(y, params)
        ctx = self.context_prediction(y_hat)
        scales_hat, means_hat = self.entropy_parameters(torch.cat((params, ctx), dim=1)).chunk(2, 1)
        _, y_likelihoods = self.gaussian_conditional(y, scales_hat, means=means_hat)
        return {"x_hat": self.g_s(y_hat)[..., :h, :w], "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    @torch.no_grad()
    def serial_y_hat(self, y: Tensor, params: Tensor) -> Tensor:
        """The decoder's ``y_hat``: the serial encoder pass fills it in place."""
        pad = self.context_kernel // 2
        y_hat = F.pad(y, (pad, pad, pad, pad))
        tables = RansTables(self.gaussian_conditional)
        for i in range(y.size(0)):
            self.encode_serially(y_hat[i : i + 1], params[i : i + 1], tables)
        return y_hat[..., pad:-pad, pad:-pad]

    def position_gaussian(self, y_hat: Tensor, params: Tensor, h: int, w: int, context_weight: Tensor) -> tuple[Tensor, Tensor]:
        """Scales and means (1 x M x 1 x 1) at latent position (h, w), from the positions decoded before it.

        ``y_hat`` is padded by ``context_kernel // 2``; ``context_weight`` is the masked context
        convolution's weight (the positions not decoded yet are zeros or masked out).
        """
        k = self.context_kernel
        ctx = F.conv2d(y_hat[:, :, h : h + k, w : w + k], context_weight, bias=self.context_prediction.bias)
        return self.entropy_parameters(torch.cat((params[:, :, h : h + 1, w : w + 1], ctx), dim=1)).chunk(2, 1)

    def encode_serially(self, y_hat: Tensor, params: Tensor, tables: RansTables) -> tuple[Tensor, Tensor]:
        """Quantise one image's padded ``y`` (1 x M x H+4 x W+4) in place, position by position in raster order.

        Returns the symbols and their CDF indexes (H·W x M, int32), in the order they are coded.
        """
        pad = self.context_kernel // 2
        height, width = y_hat.size(2) - 2 * pad, y_hat.size(3) - 2 * pad
        weight = self.context_prediction.weight * self.context_prediction.mask
        symbols = torch.empty(height * width, y_hat.size(1), dtype=torch.int32)
        indexes = torch.empty_like(symbols)
        for position, (h, w) in enumerate(itertools.product(range(height), range(width))):
            scales, means = (p.flatten(1) for p in self.position_gaussian(y_hat, params, h, w, weight))
            quantized = self.gaussian_conditional.quantize(y_hat[:, :, h + pad, w + pad], "symbols", means)
            y_hat[:, :, h + pad, w + pad] = quantized + means
            symbols[position] = quantized[0]
            indexes[position] = tables.indexes(scales)[0]
        return symbols, indexes

    def _compress_ar(self, y_hat: Tensor, params: Tensor, height: int, width: int, kernel_size: int, padding: int) -> bytes:
        """CompressAI's serial encoder, which its ``compress`` calls per image: the same string."""
        tables = RansTables(self.gaussian_conditional)
        symbols, indexes = self.encode_serially(y_hat, params, tables)
        return tables.encode(symbols, indexes)

    def _decompress_ar(
        self, y_string: bytes, y_hat: Tensor, params: Tensor, height: int, width: int, kernel_size: int, padding: int
    ) -> None:
        """CompressAI's serial decoder, which its ``decompress`` calls per image: fills ``y_hat`` (padded, zeros) in place."""
        tables = RansTables(self.gaussian_conditional)
        decoder = tables.decoder(y_string)
        weight = self.context_prediction.weight * self.context_prediction.mask
        for h, w in itertools.product(range(height), range(width)):
            scales, means = self.position_gaussian(y_hat, params, h, w, weight)
            symbols = tables.decode(decoder, tables.indexes(scales))
            y_hat[:, :, h + padding : h + padding + 1, w + padding : w + padding + 1] = symbols.to(means) + means


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
