"""The one bootstrap: resample items (or whole groups of items) with replacement, percentile intervals.

- :class:`Resampler` draws index sets over ``n`` items; with ``groups``, whole groups are
  drawn (a cluster bootstrap: all pairs of one reference photograph move together, so
  correlated items do not overstate confidence). One seed gives the same draws, so two
  statistics computed on two resamplers of one seed are compared *paired*.
- :func:`percentile_interval`: the percentile method (Efron & Tibshirani 1993) on draws
  already made, e.g. BD-rates of resampled curves.
- :func:`bootstrap_interval` / :func:`bootstrap_p_value`: a statistic of the items over
  the resamples; the two-sided p-value of "no difference" inverts the percentile interval:
  ``p = min(1, 2·min((1 + #{d* ≤ 0}) / (B + 1), (1 + #{d* ≥ 0}) / (B + 1)))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from mocodec.errors import ConfigError


def percentile_interval(draws: Sequence[float], level: float = 0.95, min_finite: float = 0.0) -> tuple[float, float]:
    """The ``level`` percentile interval of the finite ``draws``; (nan, nan) if too few are finite.

    ``min_finite``: the fraction of draws that must be finite (e.g. 0.5 where a draw can
    fail to compare, as a BD-rate of curves without a common range): with fewer, no
    honest interval exists.
    """
    values = np.asarray(draws, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.size < min_finite * values.size:
        return math.nan, math.nan
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


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


def bootstrap_interval(statistic: Callable[[np.ndarray], float], resampler: Resampler, level: float = 0.95) -> Interval:
    """Percentile interval of ``statistic(indices)``; the estimate uses every item once."""
    low, high = percentile_interval([statistic(idx) for idx in resampler], level)
    return Interval(float(statistic(np.arange(resampler.n))), low, high, level)


def bootstrap_p_value(difference: Callable[[np.ndarray], float], resampler: Resampler) -> float:
    """Two-sided paired-bootstrap p-value that ``difference`` (metric A − metric B on the same items) is 0."""
    draws = np.array([difference(idx) for idx in resampler], dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return float("nan")
    below = (1 + np.count_nonzero(draws <= 0)) / (draws.size + 1)
    above = (1 + np.count_nonzero(draws >= 0)) / (draws.size + 1)
    return float(min(1.0, 2 * min(below, above)))
