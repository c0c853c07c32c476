"""``loss = bpp + λ · Σ_i w_i · s_i · d_i`` over a configurable set of distortion terms.

``bpp = Σ −log2(likelihoods) / (N · H · W)`` with H, W the input size, as CompressAI's
``RateDistortionLoss``; with ``{"mse": 1.0}`` the two losses are identical.

**Balancing** (``balance_warmup``, off by default: every ``s_i = 1``). Terms live on very
different scales (255²·MSE ≈ 10…100, 1 − cosine ≈ 0.01…0.3), and their ratio drifts
as training proceeds: a feature term weighted to equal MSE at initialisation was seen
to grow to 15× MSE, leaving the rate ~1% of the loss. With balancing, each term is
rescaled to the magnitude of the *first* listed term (the reference, normally ``mse``)
at the current working point::

    s_i = m_ref / m_i        (m_i: running mean of d_i over training steps)

so the weights ``w_i`` state each term's share of the distortion and λ keeps its
meaning for the reference term (CompressAI's λ table for ``mse``). The running means
are a bias-corrected exponential moving average (``balance_momentum``), updated on
every finite training step and used once ``balance_warmup`` steps have been seen;
before that ``s_i = 1``. They are buffers, so checkpoints and resumed runs carry them
exactly. Scales never carry gradients.

The returned dict has every figure worth logging: ``bpp``, each raw term ``d_i`` by name,
``distortion`` (Σ w_i s_i d_i), ``loss``, each part's share of the loss
(``share_bpp``, ``share_<term>``; they sum to 1) and, with balancing, ``scale_<term>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mocodec.errors import ConfigError
from mocodec.losses.registry import DISTORTIONS
from mocodec.registry import canonical_name


def bpp_from_likelihoods(likelihoods: Mapping[str, Tensor], num_pixels: int) -> Tensor:
    """Estimated bits per pixel: the information content of every latent, over the pixel count."""
    total = sum(torch.log(lk).sum() for lk in likelihoods.values())
    return -total / (math.log(2) * num_pixels)


def bpp_per_image(likelihoods: Mapping[str, Tensor], height: int, width: int) -> Tensor:
    """Estimated bits per pixel of each image of the batch (a length-N tensor)."""
    total = sum(torch.log(lk).flatten(1).sum(1) for lk in likelihoods.values())
    return -total / (math.log(2) * height * width)


DistortionSpec = float | dict[str, Any]


def _check_nonnegative(what: str, value: Any) -> float:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ConfigError(f"{what} must be a finite number >= 0, got {value}")
    return float(value)


class RateDistortionLoss(nn.Module):
    """Rate plus weighted (optionally balanced) distortions.

    Args:
        lmbda: λ, the rate-distortion trade-off (CompressAI's scale for ``mse``).
        distortions: registry name -> weight, or -> ``{"weight": w, **constructor kwargs}``,
            e.g. ``{"mse": 1.0, "ml-clipsim": {"weight": 0.5, "layers": [3, 6, 9, 12]}}``.
            The first entry is the reference term of balancing.
        balance_warmup: training steps after which terms are balanced (module docstring);
            ``None`` (default) disables balancing.
        balance_momentum: momentum of the running means (0.99: about the last 100 steps).
    """

    def __init__(
        self,
        lmbda: float = 0.0130,
        distortions: Mapping[str, DistortionSpec] | None = None,
        balance_warmup: int | None = None,
        balance_momentum: float = 0.99,
    ) -> None:
        super().__init__()
        self.lmbda = _check_nonnegative("lambda", lmbda)
        distortions = dict(distortions or {"mse": 1.0})
        if not distortions:
            raise ConfigError("give at least one distortion term, e.g. {mse: 1.0}")
        if balance_warmup is not None and (isinstance(balance_warmup, bool) or not isinstance(balance_warmup, int) or balance_warmup < 0):
            raise ConfigError(f"balance_warmup must be a whole number of steps >= 0 or null, got {balance_warmup}")
        if not 0 <= balance_momentum < 1:
            raise ConfigError(f"balance_momentum must be in [0, 1), got {balance_momentum}")
        self.balance_warmup = balance_warmup
        self.balance_momentum = float(balance_momentum)
        self.terms = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        for name, spec in distortions.items():
            kwargs = dict(spec) if isinstance(spec, Mapping) else {"weight": spec}
            weight = _check_nonnegative(f"weight of distortion '{name}'", kwargs.pop("weight", 1.0))
            key = canonical_name(name).replace("-", "_")  # ModuleDict keys double as log names
            self.terms[key] = DISTORTIONS.create(name, **kwargs)
            self.weights[key] = weight
        # Running means of the raw terms (float64: thousands of small updates) and the step count.
        self.register_buffer("term_means", torch.zeros(len(self.terms), dtype=torch.float64))
        self.register_buffer("balance_steps", torch.zeros((), dtype=torch.long))

    @property
    def balancing(self) -> bool:
        return self.balance_warmup is not None

    def scales(self) -> Tensor:
        """``s_i`` for every term (ones before the warm-up ends or without balancing)."""
        ones = torch.ones_like(self.term_means)
        if not self.balancing or int(self.balance_steps) < max(self.balance_warmup, 1):
            return ones
        means = self.term_means.clamp_min(torch.finfo(torch.float32).tiny)
        return means[0] / means

    @torch.no_grad()
    def _update_means(self, values: Tensor) -> None:
        # Bias-corrected EMA: a plain average over the first 1 / (1 - momentum) steps, then
        # an EMA. Non-finite values (a poisoned batch) leave the means untouched.
        finite = torch.isfinite(values).all()
        step = self.balance_steps.to(torch.float64) + 1
        rate = torch.maximum(1 / step, torch.tensor(1 - self.balance_momentum, dtype=torch.float64))
        updated = self.term_means + rate * (values.to(torch.float64) - self.term_means)
        self.term_means.copy_(torch.where(finite, updated, self.term_means))
        self.balance_steps.add_(finite.long())

    def forward(self, output: Mapping[str, Any], target: Tensor) -> dict[str, Tensor]:
        """Every term for logging (module docstring); ``loss`` is the one to minimise."""
        n, _, h, w = target.shape
        bpp = bpp_from_likelihoods(output["likelihoods"], n * h * w)
        values = torch.stack([term(output["x_hat"], target) for term in self.terms.values()])
        scales = self.scales().to(values.dtype)  # from the means *before* this batch
        if self.balancing and self.training:
            self._update_means(values.detach())
        weights = values.new_tensor(list(self.weights.values()))
        parts = self.lmbda * weights * scales * values
        loss = bpp + parts.sum()
        out: dict[str, Tensor] = {"bpp": bpp}
        out.update(zip(self.terms.keys(), values.unbind()))
        out["distortion"] = (weights * scales * values).sum()
        out["loss"] = loss
        with torch.no_grad():
            denominator = loss.detach()
            out["share_bpp"] = bpp.detach() / denominator
            out.update({f"share_{key}": part / denominator for key, part in zip(self.terms.keys(), parts.detach().unbind())})
            if self.balancing:
                out.update({f"scale_{key}": s for key, s in zip(self.terms.keys(), scales.unbind())})
        return out
