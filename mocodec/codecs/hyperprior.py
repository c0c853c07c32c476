"""The scale-hyperprior family from CompressAI, padded to their stride (Ballé 2018, Minnen 2018).

The transforms and entropy models are CompressAI's; what mocodec adds is the padding
contract of :mod:`mocodec.codecs.base` and CDF tables that are always ready to code.
Qualities 1-8 use CompressAI's (N, M) table, mocodec's own sizes (:data:`OWN_SIZES`) their own;
``N``/``M`` override them (tiny test models).
Importing this module imports CompressAI (seconds): :mod:`mocodec.codecs.zoo` imports it
when the first of these codecs is built.
"""

from __future__ import annotations

from typing import Any

import torch
from compressai import models as cm
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.zoo.image import cfgs as COMPRESSAI_CFGS
from compressai.zoo.image import model_urls as COMPRESSAI_URLS
from torch import Tensor

from mocodec.codecs.base import CodecIdentity, check_input, pad_to_multiple, padded_size
from mocodec.errors import ConfigError


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
        return all(
            m._offset.numel() > 0
            for m in self.modules()
            if isinstance(m, (EntropyBottleneck, GaussianConditional))
        )

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
        """The decoder's ``y_hat``: CompressAI's serial encoder pass fills it in place."""
        pad = (self.context_kernel - 1) // 2
        y_hat = torch.nn.functional.pad(y, (pad, pad, pad, pad))
        for i in range(y.size(0)):
            self._compress_ar(y_hat[i : i + 1], params[i : i + 1], y.size(2), y.size(3), self.context_kernel, pad)
        return y_hat[..., pad:-pad, pad:-pad]


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
    "mbt2018-mean-small": ("mbt2018-mean", {q: (64, 96) for q in range(1, 5)}),
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
