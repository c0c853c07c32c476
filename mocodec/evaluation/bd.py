"""Bjøntegaard deltas between two rate-metric curves, through the ``bjontegaard`` package.

- **BD-rate**: the average bitrate change of a test curve against an anchor at equal
  metric, in percent (negative: the test needs fewer bits). It integrates log10(rate)
  as a function of the metric over the metric range both curves cover.
- **BD-metric**: the average metric change at equal rate, ``test - anchor`` in the
  metric's own units (BD-PSNR for PSNR; for a lower-is-better metric such as KL a
  negative value is a gain), integrated over the common log-rate range.

Interpolation: ``pchip`` (default; the JCT-VC/JVET common-test-conditions sheets),
``akima``, or ``cubic`` (Bjøntegaard's original third-order polynomial fit, which
misbehaves on some curves). Every curve needs at least :data:`MIN_POINTS` (4, as the
common test conditions use) points on its monotone front: two or three points would
interpolate a straight line or a single bend and call it a curve. ``min_points`` lowers
it deliberately (never below what the interpolation needs); a comparison without enough
points, or whose curves share too little of their ranges, says so in its ``note``.

Rate-task curves are measured, not designed: at a low rate an extra bit can leave
accuracy flat or even lower it by noise, but interpolating "rate as a function of the
metric" needs a strictly monotone metric. So each curve is first reduced to its
*monotone front*: points sorted by rate, each kept only if its metric is strictly
better than every cheaper point's. Dropped points are counted and shown in the table.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import bjontegaard

from mocodec.errors import ConfigError
from mocodec.evaluation.results import read_curves
from mocodec.utils.tables import to_text

METHODS = ("pchip", "akima", "cubic")
MIN_POINTS = 4  # points per curve a BD figure needs by default
METHOD_POINTS = {"pchip": 2, "akima": 2, "cubic": 4}  # what each interpolation needs at the very least
LOW_OVERLAP = 0.75  # the bjontegaard package's own warning threshold


@dataclass(frozen=True)
class RateCurve:
    """One curve: a name and its (rate, metric) points, in any order."""

    name: str
    rate: tuple[float, ...]
    metric: tuple[float, ...]

    @classmethod
    def from_entry(cls, entry: dict[str, Any], metric: str, rate: str = "bpp") -> RateCurve:
        """From a CompressAI-schema results dict; points missing either value are left out."""
        res = entry.get("results", {})
        if metric not in res:
            raise ConfigError(f"results of '{entry.get('name', '?')}' have no metric '{metric}'; they have: {', '.join(res)}")
        pairs = [(r, m) for r, m in zip(res.get(rate, []), res[metric]) if _number(r) and _number(m)]
        return cls(str(entry.get("name", "?")), tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def monotone_front(rate: Sequence[float], metric: Sequence[float], higher_is_better: bool = True) -> tuple[list[float], list[float]]:
    """Points sorted by rate, each kept only if its metric beats every cheaper point's (strictly)."""
    sign = 1.0 if higher_is_better else -1.0
    kept_r: list[float] = []
    kept_m: list[float] = []
    for r, m in sorted(zip(rate, metric), key=lambda p: (p[0], -sign * p[1])):
        if r <= 0:
            continue  # log-rate is undefined at zero bits
        if not kept_m or sign * m > sign * kept_m[-1]:  # at equal rates the best comes first
            kept_r.append(float(r))
            kept_m.append(float(m))
    return kept_r, kept_m


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Fraction of the joint range that both ranges cover."""
    lo, hi = max(min(a), min(b)), min(max(a), max(b))
    total = max(max(a), max(b)) - min(min(a), min(b))
    return max(hi - lo, 0.0) / total if total > 0 else 0.0


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown BD interpolation '{method}'; use one of {', '.join(METHODS)}")


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_metric: Sequence[float],
    test_rate: Sequence[float],
    test_metric: Sequence[float],
    method: str = "pchip",
    higher_is_better: bool = True,
) -> float:
    """Percent rate change of the test at equal metric; points must form monotone curves (see :func:`monotone_front`)."""
    _check_method(method)
    sign = 1.0 if higher_is_better else -1.0  # the package expects a metric that grows with the rate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overlap is reported by :func:`compare`, not as a warning
        return float(
            bjontegaard.bd_rate(
                anchor_rate,
                [sign * m for m in anchor_metric],
                test_rate,
                [sign * m for m in test_metric],
                method=method,
                require_matching_points=False,
                min_overlap=0,
            )
        )


def bd_metric(
    anchor_rate: Sequence[float],
    anchor_metric: Sequence[float],
    test_rate: Sequence[float],
    test_metric: Sequence[float],
    method: str = "pchip",
) -> float:
    """Average ``test - anchor`` metric at equal rate (over the common log-rate range)."""
    _check_method(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(
            bjontegaard.bd_psnr(
                anchor_rate, anchor_metric, test_rate, test_metric, method=method, require_matching_points=False, min_overlap=0
            )
        )


@dataclass(frozen=True)
class BDResult:
    name: str
    points: int  # points on the monotone front (used)
    dropped: int  # points left out as not monotone
    bd_rate: float  # percent; nan when not computable (see note)
    bd_metric: float
    note: str = ""


def compare(
    anchor: RateCurve, test: RateCurve, method: str = "pchip", higher_is_better: bool = True, min_points: int = MIN_POINTS
) -> BDResult:
    """BD-rate and BD-metric of ``test`` against ``anchor``; nan with a note when they cannot be computed.

    ``min_points``: monotone points each curve needs (default 4; at least what ``method`` needs).
    """
    _check_method(method)
    ar, am = monotone_front(anchor.rate, anchor.metric, higher_is_better)
    tr, tm = monotone_front(test.rate, test.metric, higher_is_better)
    dropped = len(test.rate) - len(tr)
    need = max(min_points, METHOD_POINTS[method])
    nan = float("nan")
    if len(ar) < need or len(tr) < need:
        few = anchor.name if len(ar) < need else test.name
        return BDResult(test.name, len(tr), dropped, nan, nan, f"{few}: fewer than {need} monotone points for {method}")
    log_ar, log_tr = [math.log10(r) for r in ar], [math.log10(r) for r in tr]
    metric_overlap, rate_overlap = _overlap(am, tm), _overlap(log_ar, log_tr)
    notes = []
    rate = bd_rate(ar, am, tr, tm, method, higher_is_better) if metric_overlap > 0 else nan
    delta = bd_metric(ar, am, tr, tm, method) if rate_overlap > 0 else nan
    if metric_overlap == 0:
        notes.append("no common metric range")
    elif metric_overlap < LOW_OVERLAP:
        notes.append(f"metric ranges overlap {metric_overlap:.0%}")
    if rate_overlap == 0:
        notes.append("no common rate range")
    elif rate_overlap < LOW_OVERLAP:
        notes.append(f"rate ranges overlap {rate_overlap:.0%}")
    if dropped:
        notes.append(f"{dropped} non-monotone point{'s' if dropped > 1 else ''} dropped")
    return BDResult(test.name, len(tr), dropped, rate, delta, "; ".join(notes))


def bd_table(
    entries: Sequence[dict[str, Any]],
    anchor: str | None,
    metric: str,
    method: str = "pchip",
    higher_is_better: bool = True,
    rate: str = "bpp",
    min_points: int = MIN_POINTS,
) -> list[BDResult]:
    """Every entry against the entry named ``anchor`` (default: the first) on ``metric``."""
    if not entries:
        raise ConfigError("no results to compare")
    names = [str(e.get("name")) for e in entries]
    anchor = anchor or names[0]
    if anchor not in names:
        raise ConfigError(f"anchor '{anchor}' is not among the curves: {', '.join(names)}")
    base = RateCurve.from_entry(entries[names.index(anchor)], metric, rate)
    return [
        compare(base, RateCurve.from_entry(e, metric, rate), method, higher_is_better, min_points)
        for e in entries
        if e.get("name") != anchor
    ]


def format_table(rows: Sequence[BDResult], anchor: str, metric: str, method: str) -> str:
    """A plain-text table: one row per curve, BD-rate [%] and BD-<metric> against ``anchor``."""
    head = f"BD against {anchor} on {metric} ({method}); BD-rate < 0: fewer bits at equal {metric}"
    table = [
        {"curve": r.name, "points": r.points, "BD-rate [%]": f"{r.bd_rate:.2f}", f"BD-{metric}": r.bd_metric, "note": r.note} for r in rows
    ]
    return head + "\n" + to_text(table, ["curve", "points", "BD-rate [%]", f"BD-{metric}", "note"]).rstrip("\n")


def load_curves(paths: Sequence[str], metric: str) -> tuple[list[dict[str, Any]], bool | None]:
    """The curves of results files (any version) and CompressAI-schema files, and ``metric``'s direction if a file states it."""
    entries, metrics = read_curves(paths)
    meta = metrics.get(metric)
    return entries, (bool(meta.get("higher_is_better", True)) if meta else None)
