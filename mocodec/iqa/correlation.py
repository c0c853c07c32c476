"""Agreement of a metric with subjective scores: SRCC, KRCC, and PLCC/RMSE after a logistic fit.

The protocol of the VQEG FR-TV report and Sheikh et al. (2006, "A statistical evaluation
of recent full reference image quality assessment algorithms"): rank correlations (SRCC,
KRCC) on the raw scores; PLCC and RMSE after mapping the metric through a monotonic
logistic fitted to the subjective scores, which removes the metric's nonlinear scale.

- 5-parameter (Sheikh et al.): ``f(q) = b1·(1/2 − 1/(1 + exp(b2·(q − b3)))) + b4·q + b5``
- 4-parameter (VQEG):           ``f(q) = (b1 − b2) / (1 + exp(−(q − b3)/|b4|)) + b2``

Directions are made explicit rather than left to the sign of the result: both the
metric (``higher_is_better`` of its score) and the subjective scale (MOS: higher is
better; DMOS: lower) are oriented so that larger means better before anything is
computed, so a good metric has positive SRCC/KRCC/PLCC on every dataset.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from mocodec.errors import ConfigError


def logistic_5(q: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """Sheikh et al.'s 5-parameter logistic with a linear term."""
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(np.clip(b2 * (q - b3), -500, 500)))) + b4 * q + b5


def logistic_4(q: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG's 4-parameter logistic: from ``b2`` (q → −∞) to ``b1`` (q → +∞), centre ``b3``, width ``|b4|``."""
    return (b1 - b2) / (1.0 + np.exp(np.clip(-(q - b3) / np.abs(b4), -500, 500))) + b2


LOGISTICS: dict[str, Callable[..., np.ndarray]] = {"5": logistic_5, "4": logistic_4}
NUM_PARAMS = {"5": 5, "4": 4}


@dataclass(frozen=True)
class LogisticFit:
    """A fitted logistic; ``kind`` is ``"4"``, ``"5"`` or ``"linear"`` (the fallback when the fit diverges)."""

    kind: str
    params: tuple[float, ...]

    def __call__(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        if self.kind == "linear":
            return self.params[0] * q + self.params[1]
        return LOGISTICS[self.kind](q, *self.params)


def _initial_guess(kind: str, q: np.ndarray, s: np.ndarray) -> list[float]:
    """Start from the data's range and centre; the slope's sign follows the rank correlation."""
    sign = 1.0 if stats.spearmanr(q, s)[0] >= 0 else -1.0
    spread = float(np.std(q)) or 1.0
    if kind == "5":
        return [sign * float(np.ptp(s)), 1.0 / spread, float(np.median(q)), 0.0, float(np.mean(s))]
    lo, hi = float(np.min(s)), float(np.max(s))
    return [hi, lo, float(np.median(q)), sign * spread / 4] if sign > 0 else [lo, hi, float(np.median(q)), spread / 4]


def fit_logistic(q: Sequence[float], s: Sequence[float], kind: str = "5") -> LogisticFit:
    """Least-squares fit of the ``kind`` logistic mapping metric scores ``q`` to subjective ``s``.

    A fit that does not converge falls back to a straight line (``kind="linear"``),
    which is what PLCC without a fit measures; the result says which one was used.
    """
    if kind not in LOGISTICS:
        raise ConfigError(f"unknown logistic '{kind}'; use 4 or 5 (parameters)")
    q, s = np.asarray(q, dtype=np.float64), np.asarray(s, dtype=np.float64)
    if len(q) > NUM_PARAMS[kind] and np.ptp(q) > 0:  # more points than parameters
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optimize.OptimizeWarning)
                params, _ = optimize.curve_fit(LOGISTICS[kind], q, s, p0=_initial_guess(kind, q, s), maxfev=20000)
            if np.all(np.isfinite(params)):
                return LogisticFit(kind, tuple(float(p) for p in params))
        except (RuntimeError, ValueError):
            pass
    slope, intercept = np.polyfit(q, s, 1) if np.ptp(q) > 0 else (0.0, float(np.mean(s)))
    return LogisticFit("linear", (float(slope), float(intercept)))


def finite_scores(q: Sequence[float]) -> np.ndarray:
    """Replace ±inf (e.g. PSNR of an unchanged image) by the extreme finite value, keeping ranks.

    NaN is an error: it means the metric failed on an image, which must not be averaged away.
    """
    q = np.asarray(q, dtype=np.float64)
    if np.isnan(q).any():
        raise ConfigError(f"{int(np.isnan(q).sum())} metric score(s) are NaN; the metric failed on those images")
    finite = q[np.isfinite(q)]
    if finite.size == 0:
        raise ConfigError("every metric score is infinite; the distorted images equal their references")
    return np.clip(q, finite.min(), finite.max())


def orient(values: Sequence[float], higher_is_better: bool) -> np.ndarray:
    """Scores on a scale where larger means better quality."""
    v = np.asarray(values, dtype=np.float64)
    return v if higher_is_better else -v


@dataclass(frozen=True)
class Correlation:
    """Agreement of a metric with subjective scores over ``n`` images (all oriented: larger is better)."""

    srcc: float
    krcc: float
    plcc: float
    rmse: float  # of the fitted prediction, in the subjective scale's units
    n: int
    fit: LogisticFit
    residuals: np.ndarray = field(repr=False, compare=False)  # |s − f(q)| per image, for paired tests

    def as_dict(self) -> dict[str, float | int | str]:
        return {"srcc": self.srcc, "krcc": self.krcc, "plcc": self.plcc, "rmse": self.rmse, "n": self.n, "fit": self.fit.kind}


def correlate(
    metric: Sequence[float],
    subjective: Sequence[float],
    *,
    metric_higher_is_better: bool = True,
    subjective_higher_is_better: bool = True,
    logistic: str = "5",
) -> Correlation:
    """SRCC, KRCC, and PLCC/RMSE after the ``logistic`` fit, with both directions handled.

    ``subjective_higher_is_better`` is False for DMOS (LIVE), True for MOS (TID2013, KADID-10k).
    """
    q = orient(finite_scores(metric), metric_higher_is_better)
    s = orient(subjective, subjective_higher_is_better)
    if q.shape != s.shape or q.ndim != 1:
        raise ConfigError(f"metric and subjective scores differ in length ({q.size} vs {s.size})")
    if q.size < 3:
        raise ConfigError(f"correlations need at least 3 images, got {q.size}")
    fit = fit_logistic(q, s, logistic)
    predicted = fit(q)
    with warnings.catch_warnings():  # constant input: the correlation is undefined (nan), which is the answer
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        srcc = float(stats.spearmanr(q, s)[0])
        krcc = float(stats.kendalltau(q, s)[0])
        plcc = float(stats.pearsonr(predicted, s)[0]) if np.ptp(predicted) > 0 else float("nan")
    residuals = np.abs(s - predicted)
    return Correlation(srcc, krcc, plcc, float(np.sqrt(np.mean(residuals**2))), int(q.size), fit, residuals)
