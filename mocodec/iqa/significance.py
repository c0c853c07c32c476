"""Confidence intervals and paired significance tests for comparing metrics on the same data.

Two metrics scored on the same pairs (2AFC) or images (correlations) are compared
*paired*: each bootstrap resample draws the same items for both, so the test sees the
difference, not two independent noisy estimates.

- **Bootstrap** (percentile method, Efron & Tibshirani 1993): resample items with
  replacement, or whole *groups* (all pairs/images of one reference photograph) when
  items within a group are correlated — a cluster bootstrap, which does not overstate
  confidence when one reference contributes many pairs. The two-sided p-value of
  "no difference" inverts the percentile interval:
  ``p = min(1, 2·min((1 + #{d* ≤ 0}) / (B + 1), (1 + #{d* ≥ 0}) / (B + 1)))``.
- **Wilcoxon signed-rank** (scipy) on per-item paired values — per-pair 2AFC scores, or
  per-image absolute residuals of the fitted logistic on MOS datasets; zero differences
  are dropped (Wilcoxon's convention), and no non-zero difference at all gives p = 1. As
  R's ``wilcox.test``: the exact null law for up to 50 pairs without zeros or ties, the
  normal approximation with tie correction otherwise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
from scipy import stats

from mocodec.errors import ConfigError


class Resampler:
    """Bootstrap index sets over ``n`` items; with ``groups``, whole groups are drawn with replacement.

    The same seed gives the same resamples, so two metrics evaluated with two resamplers of
    one seed are compared on identical draws.
    """

    def __init__(self, n: int, groups: Sequence[object] | None = None, *, n_resamples: int = 2000, seed: int = 0):
        if n < 1:
            raise ConfigError("the bootstrap needs at least one item")
        if n_resamples < 1:
            raise ConfigError(f"n_resamples must be positive, got {n_resamples}")
        self.n, self.n_resamples, self.seed = n, n_resamples, seed
        if groups is None:
            self.members = None
        else:
            if len(groups) != n:
                raise ConfigError(f"{len(groups)} group labels for {n} items")
            _, codes = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
            order = np.argsort(codes, kind="stable")
            self.members = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)

    def __iter__(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        for _ in range(self.n_resamples):
            if self.members is None:
                yield rng.integers(0, self.n, self.n)
            else:
                chosen = rng.integers(0, len(self.members), len(self.members))
                yield np.concatenate([self.members[g] for g in chosen])


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    level: float = 0.95


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float], resampler: Resampler, level: float = 0.95
) -> Interval:
    """Percentile interval of ``statistic(indices)``; the estimate uses every item once."""
    draws = np.array([statistic(idx) for idx in resampler], dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    estimate = float(statistic(np.arange(resampler.n)))
    if draws.size == 0:
        return Interval(estimate, float("nan"), float("nan"), level)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high), level)


def bootstrap_p_value(difference: Callable[[np.ndarray], float], resampler: Resampler) -> float:
    """Two-sided paired-bootstrap p-value that ``difference`` (metric A − metric B on the same items) is 0."""
    draws = np.array([difference(idx) for idx in resampler], dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return float("nan")
    below = (1 + np.count_nonzero(draws <= 0)) / (draws.size + 1)
    above = (1 + np.count_nonzero(draws >= 0)) / (draws.size + 1)
    return float(min(1.0, 2 * min(below, above)))


def wilcoxon_p_value(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired values ``a`` vs ``b`` (1.0 when all pairs are equal)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ConfigError(f"paired values differ in length ({a.size} vs {b.size})")
    d = a - b
    if not np.any(d != 0):
        return 1.0
    magnitudes = np.abs(d[d != 0])
    # R's wilcox.test rule: the exact law for small samples without zeros or ties, else the normal
    # approximation with tie correction (deterministic and fast, unlike a permutation test)
    exact = magnitudes.size == d.size <= 50 and np.unique(magnitudes).size == magnitudes.size
    with warnings.catch_warnings():  # scipy warns about small samples under the normal approximation
        warnings.simplefilter("ignore", UserWarning)
        return float(stats.wilcoxon(a, b, zero_method="wilcox", method="exact" if exact else "asymptotic").pvalue)


@dataclass(frozen=True)
class PairedComparison:
    """Metric ``a`` vs metric ``b`` on the same items: the difference of their figures and its p-values."""

    a: str
    b: str
    difference: float
    p_bootstrap: float
    p_wilcoxon: float

    def as_dict(self) -> dict[str, float | str]:
        return {"a": self.a, "b": self.b, "difference": self.difference,
                "p_bootstrap": self.p_bootstrap, "p_wilcoxon": self.p_wilcoxon}
