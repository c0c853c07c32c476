"""Two-alternative forced choice (2AFC) agreement of a metric with pair preferences.

For a pair (A, B) of distortions of one reference, ``p`` is the probability that A is
preferred (PCMP: the fraction of voters; BAPPS/PieAPP-style human fractions; 1/0/0.5 for
pairs formed from scored images). The metric prefers A (``m = 1``), B (``m = 0``) or ties
(``m = 1/2``, equal scores); its per-pair score is

    2AFC = p·m + (1 − p)·(1 − m)

and the dataset figure is the mean, with a bootstrap 95% interval (see
:mod:`mocodec.utils.bootstrap`; resampling whole references when ``groups`` is given).
A metric that always ties scores 0.5; a perfect one scores the mean of max(p, 1 − p).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mocodec.errors import ConfigError
from mocodec.utils.bootstrap import Interval, Resampler, bootstrap_interval


def metric_preference(score_a: Sequence[float], score_b: Sequence[float], higher_is_better: bool = True) -> np.ndarray:
    """Per pair: 1.0 if the metric rates A better, 0.0 if B, 0.5 on equal scores (±inf compare as usual)."""
    a, b = np.asarray(score_a, dtype=np.float64), np.asarray(score_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ConfigError(f"scores of A and B differ in length ({a.size} vs {b.size})")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ConfigError("a metric score is NaN; the metric failed on some images")
    better = a > b if higher_is_better else a < b
    return np.where(a == b, 0.5, better.astype(np.float64))


def twoafc_per_pair(preference: np.ndarray, p: Sequence[float]) -> np.ndarray:
    """``p·m + (1 − p)·(1 − m)`` for each pair."""
    p = np.asarray(p, dtype=np.float64)
    if p.shape != preference.shape:
        raise ConfigError(f"{p.size} labels for {preference.size} pairs")
    if ((p < 0) | (p > 1)).any():
        raise ConfigError("pair labels must be probabilities in [0, 1]")
    return p * preference + (1.0 - p) * (1.0 - preference)


@dataclass(frozen=True)
class TwoAFC:
    interval: Interval  # mean 2AFC score and its bootstrap interval
    per_pair: np.ndarray = field(repr=False, compare=False)

    @property
    def score(self) -> float:
        return self.interval.estimate

    def as_dict(self) -> dict[str, float | int]:
        return {"2afc": self.score, "2afc_low": self.interval.low, "2afc_high": self.interval.high, "n": int(self.per_pair.size)}


def twoafc(
    score_a: Sequence[float],
    score_b: Sequence[float],
    p: Sequence[float],
    *,
    higher_is_better: bool = True,
    groups: Sequence[object] | None = None,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> TwoAFC:
    """Mean 2AFC score of a metric (scores of A and B per pair) against labels ``p``, with its interval."""
    per_pair = twoafc_per_pair(metric_preference(score_a, score_b, higher_is_better), p)
    if per_pair.size == 0:
        raise ConfigError("2AFC needs at least one pair")
    resampler = Resampler(per_pair.size, groups, n_resamples=n_resamples, seed=seed)
    return TwoAFC(bootstrap_interval(lambda idx: float(per_pair[idx].mean()), resampler, level), per_pair)
