"""The learned codecs of the registry, declared without importing CompressAI.

CompressAI 1.2 imports torch_geometric (for its point-cloud models) whenever any part of it
is imported: seconds, which listing codecs or coding a JPEG must not pay. So the entries
here (names, test sizes, published weights, checkpoint conversion) need nothing of
CompressAI, and this module is the one importer of the modules that define the
architectures, :mod:`~mocodec.codecs.hyperprior` and :mod:`~mocodec.codecs.mlicpp` (which
import CompressAI at their top): :func:`hyperprior_module` and :func:`mlicpp_module` import
them when a learned codec is first built, its published weights are looked up or its
checkpoint is converted.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from torch import Tensor, nn

from mocodec.codecs.registry import register_codec
from mocodec.codecs.shipped import shipped_weights

# Channel widths of the tiny models tests and registry sweeps build: the same structure, milliseconds per image.
TINY_HYPERPRIOR = {"N": 8, "M": 12}
TINY_MLICPP = {"N": 16, "M": 32, "num_slices": 4, "hidden_width": 40}

# The qualities each family has (the registry entries declare them, so sweeps default to them without building a
# model; tests/codecs/test_registry.py checks that the constructors accept exactly these).
COMPRESSAI_QUALITIES = range(1, 9)  # CompressAI's (N, M) table and published weights
SMALL_QUALITIES = range(1, 5)  # the shipped mbt2018-mean-small (OWN_SIZES in hyperprior.py)
MLICPP_QUALITIES = range(1, 7)  # the published MLIC++ MSE λ


def hyperprior_module() -> ModuleType:
    """:mod:`mocodec.codecs.hyperprior` (CompressAI's scale-hyperprior family), imported on first use."""
    from mocodec.codecs import hyperprior

    return hyperprior


def mlicpp_module() -> ModuleType:
    """:mod:`mocodec.codecs.mlicpp` (MLIC++, built on CompressAI's entropy models), imported on first use."""
    from mocodec.codecs import mlicpp

    return mlicpp


def compressai_url(name: str, quality: int, metric: str = "mse") -> str:
    """The published CompressAI weights for (architecture, metric, quality)."""
    return hyperprior_module().compressai_url(name, quality, metric)


def convert_mlicpp_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """An official MLIC++ checkpoint's keys renamed to mocodec's (see :func:`mocodec.codecs.mlicpp.convert_official_state_dict`)."""
    return mlicpp_module().convert_official_state_dict(state_dict)


# --------------------------------------------------------------------------- CompressAI's scale-hyperprior family


@register_codec(pretrained_url=compressai_url, test_kwargs=TINY_HYPERPRIOR, qualities=COMPRESSAI_QUALITIES)
def bmshj2018_factorized(quality: int = 3, N: int | None = None, M: int | None = None, **kw: Any) -> nn.Module:
    return hyperprior_module().compressai_codec("bmshj2018-factorized", quality, N, M, **kw)


@register_codec(pretrained_url=compressai_url, test_kwargs=TINY_HYPERPRIOR, qualities=COMPRESSAI_QUALITIES)
def bmshj2018_hyperprior(quality: int = 3, N: int | None = None, M: int | None = None, **kw: Any) -> nn.Module:
    return hyperprior_module().compressai_codec("bmshj2018-hyperprior", quality, N, M, **kw)


@register_codec(pretrained_url=compressai_url, test_kwargs=TINY_HYPERPRIOR, qualities=COMPRESSAI_QUALITIES)
def mbt2018_mean(quality: int = 3, N: int | None = None, M: int | None = None, **kw: Any) -> nn.Module:
    return hyperprior_module().compressai_codec("mbt2018-mean", quality, N, M, **kw)


@register_codec(pretrained_url=compressai_url, test_kwargs=TINY_HYPERPRIOR, qualities=COMPRESSAI_QUALITIES)
def mbt2018(quality: int = 3, N: int | None = None, M: int | None = None, **kw: Any) -> nn.Module:
    return hyperprior_module().compressai_codec("mbt2018", quality, N, M, **kw)


# --------------------------------------------------------------------------- mocodec's own weights


@register_codec(pretrained_file=shipped_weights, test_kwargs=TINY_HYPERPRIOR, qualities=SMALL_QUALITIES)
def mbt2018_mean_small(quality: int = 2, N: int | None = None, M: int | None = None, **kw: Any) -> nn.Module:
    """The mean-scale hyperprior at N=64, M=96, trained by mocodec on CPU; ``--pretrained``: the weights shipped with mocodec."""
    return hyperprior_module().compressai_codec("mbt2018-mean-small", quality, N, M, **kw)


# --------------------------------------------------------------------------- MLIC++


@register_codec(test_kwargs=TINY_MLICPP, convert_state_dict=convert_mlicpp_state_dict, qualities=MLICPP_QUALITIES)
def mlicpp(quality: int = 3, N: int = 192, M: int = 320, num_slices: int = 10, hidden_width: int = 320) -> nn.Module:
    """MLIC++ as published: 83,501,408 parameters."""
    return mlicpp_module().mlicpp_codec("mlicpp", quality, N=N, M=M, num_slices=num_slices, hidden_width=hidden_width)


@register_codec(test_kwargs={}, convert_state_dict=convert_mlicpp_state_dict, qualities=MLICPP_QUALITIES)
def mlicpp_tiny(quality: int = 3, **overrides: int) -> nn.Module:
    """MLIC++'s structure at test size (:data:`TINY_MLICPP`; keyword arguments override it)."""
    return mlicpp_module().mlicpp_codec("mlicpp-tiny", quality, **{**TINY_MLICPP, **overrides})
