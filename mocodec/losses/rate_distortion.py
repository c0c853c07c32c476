"""``loss = bpp + λ · Σ_i w_i · d_i`` over a configurable set of distortion terms.

``bpp = Σ −log2(likelihoods) / (N · H · W)`` with H, W the input size, as CompressAI's
``RateDistortionLoss``; with ``{"mse": 1.0}`` the two losses are identical.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from mocodec.errors import ConfigError
from mocodec.losses.registry import DISTORTIONS
from mocodec.registry import canonical_name


def bpp_from_likelihoods(likelihoods: Mapping[str, Tensor], num_pixels: int) -> Tensor:
    """Estimated bits per pixel: the information content of every latent, over the pixel count."""
    total = sum(torch.log(lk).sum() for lk in likelihoods.values())
    return -total / (math.log(2) * num_pixels)


DistortionSpec = float | dict[str, Any]


class RateDistortionLoss(nn.Module):
    """Rate plus weighted distortions.

    Args:
        lmbda: λ, the rate-distortion trade-off (CompressAI's scale for ``mse``).
        distortions: registry name -> weight, or -> ``{"weight": w, **constructor kwargs}``,
            e.g. ``{"mse": 1.0, "ml-clipsim": {"weight": 300.0, "layers": [3, 6, 9, 12]}}``.
    """

    def __init__(self, lmbda: float = 0.0130, distortions: Mapping[str, DistortionSpec] | None = None) -> None:
        super().__init__()
        if not (isinstance(lmbda, (int, float)) and math.isfinite(lmbda) and lmbda >= 0):
            raise ConfigError(f"lambda must be a finite number >= 0, got {lmbda}")
        distortions = dict(distortions or {"mse": 1.0})
        if not distortions:
            raise ConfigError("give at least one distortion term, e.g. {mse: 1.0}")
        self.lmbda = float(lmbda)
        self.terms = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        for name, spec in distortions.items():
            kwargs = dict(spec) if isinstance(spec, Mapping) else {"weight": spec}
            weight = kwargs.pop("weight", 1.0)
            if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
                raise ConfigError(f"weight of distortion '{name}' must be a finite number >= 0, got {weight}")
            key = canonical_name(name)
            self.terms[key.replace("-", "_")] = DISTORTIONS.create(key, **kwargs)
            self.weights[key.replace("-", "_")] = float(weight)

    def forward(self, output: Mapping[str, Any], target: Tensor) -> dict[str, Tensor]:
        """Every term for logging: ``bpp``, each distortion by name, ``distortion`` (weighted sum), ``loss``."""
        n, _, h, w = target.shape
        out: dict[str, Tensor] = {"bpp": bpp_from_likelihoods(output["likelihoods"], n * h * w)}
        weighted = target.new_zeros(())
        for key, term in self.terms.items():
            value = term(output["x_hat"], target)
            out[key] = value
            weighted = weighted + self.weights[key] * value
        out["distortion"] = weighted
        out["loss"] = out["bpp"] + self.lmbda * weighted
        return out
