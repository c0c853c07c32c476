"""Paired significance tests for comparing metrics on the same data.

Two metrics scored on the same pairs (2AFC) or images (correlations) are compared
*paired*: each bootstrap resample (:mod:`mocodec.utils.bootstrap`, whole references at a
time) draws the same items for both, so the test sees the difference, not two
independent noisy estimates.

- **Wilcoxon signed-rank** (scipy) on per-item paired values — per-pair 2AFC scores, or
  per-image absolute residuals of the fitted logistic on MOS datasets; zero differences
  are dropped (Wilcoxon's convention), and no non-zero difference at all gives p = 1. As
  R's ``wilcox.test``: the exact null law for up to 50 pairs without zeros or ties, the
  normal approximation with tie correction otherwise.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mocodec.errors import ConfigError


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
        return {"a": self.a, "b": self.b, "difference": self.difference, "p_bootstrap": self.p_bootstrap, "p_wilcoxon": self.p_wilcoxon}
