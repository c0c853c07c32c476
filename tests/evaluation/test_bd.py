"""BD-rate / BD-metric: the bjontegaard package's reference examples, exact properties, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator

from mocodec.errors import ConfigError
from mocodec.evaluation.bd import RateCurve, bd_metric, bd_rate, bd_table, compare, format_table, monotone_front

# The three test cases of the bjontegaard package's README / example_usage.py (libx265
# rates in kbps and PSNRs; case 2 high rates, case 3 six points).
CASES = {
    1: (
        [9487.76, 4593.60, 2486.44, 1358.24],
        [40.037, 38.615, 36.845, 34.851],
        [9787.80, 4469.00, 2451.52, 1356.24],
        [40.121, 38.651, 36.970, 34.987],
    ),
    2: (
        [82472.76, 26875.24, 9487.76, 4593.6],
        [43.825, 41.404, 40.037, 38.615],
        [99896.96, 33952.04, 9787.8, 4469.0],
        [44.731, 41.875, 40.121, 38.651],
    ),
    3: (
        [82472.76, 26875.24, 9487.76, 4593.6, 3600, 2900],
        [43.825, 41.404, 40.037, 38.615, 36.5, 35.1],
        [99896.96, 33952.04, 9787.8, 4469.0, 4040, 3300],
        [44.731, 41.875, 40.121, 38.651, 37, 36.5],
    ),
}
# (BD-rate %, BD-PSNR dB) printed by bjontegaard 1.3.0's bd_rate / bd_psnr for these cases.
REFERENCE = {
    (1, "pchip"): (-4.417485350589045, 0.11969278542479489),
    (1, "akima"): (-4.425245156997493, 0.11940927028529469),
    (1, "cubic"): (-4.420462706026296, 0.1204094191146457),
    (2, "pchip"): (-4.47218200276197, 0.08887484704747745),
    (2, "akima"): (-4.0857609404152395, 0.08990284924945707),
    (2, "cubic"): (-4.699437548106711, 0.09540440289107989),
    (3, "pchip"): (-2.9528024116427964, 0.08953590194998828),
    (3, "akima"): (-2.52692018696532, 0.050889305024889205),
    (3, "cubic"): (-0.6392886206237569, 0.10358085155060548),
}


@pytest.mark.parametrize("case,method", sorted(REFERENCE))
def test_reference_examples(case, method):
    ra, da, rt, dt = CASES[case]
    rate, psnr = REFERENCE[(case, method)]
    assert bd_rate(ra, da, rt, dt, method) == pytest.approx(rate, abs=1e-9)
    assert bd_metric(ra, da, rt, dt, method) == pytest.approx(psnr, abs=1e-9)
    result = compare(RateCurve("anchor", tuple(ra), tuple(da)), RateCurve("test", tuple(rt), tuple(dt)), method)
    assert (result.bd_rate, result.bd_metric, result.points, result.note) == (
        pytest.approx(rate, abs=1e-9),
        pytest.approx(psnr, abs=1e-9),
        len(rt),
        "",
    )


def test_pchip_bd_rate_matches_an_independent_integration():
    """Case 1 recomputed from the definition: mean log10-rate gap of PCHIP fits over the common PSNR range."""
    ra, da, rt, dt = (np.array(v) for v in CASES[1])
    fa = PchipInterpolator(da[::-1], np.log10(ra)[::-1])
    ft = PchipInterpolator(dt[::-1], np.log10(rt)[::-1])
    lo, hi = max(da.min(), dt.min()), min(da.max(), dt.max())
    expected = (10 ** ((ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo)) - 1) * 100
    assert bd_rate(ra, da, rt, dt, "pchip") == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("method", ["pchip", "akima", "cubic"])
def test_half_the_rate_is_minus_fifty_percent_and_a_shift_is_the_bd_metric(method):
    """A curve at exactly half the anchor's rate everywhere saves 50 %; a metric shift of 0.05 is a BD-metric of 0.05."""
    rate = (0.1, 0.2, 0.4, 0.8, 1.6)
    acc = (0.30, 0.55, 0.70, 0.80, 0.86)
    anchor = RateCurve("jpeg", rate, acc)
    cheaper = RateCurve("half", tuple(r / 2 for r in rate), acc)
    better = RateCurve("better", rate, tuple(a + 0.05 for a in acc))
    assert compare(anchor, cheaper, method).bd_rate == pytest.approx(-50.0, abs=1e-9)
    assert compare(anchor, better, method).bd_metric == pytest.approx(0.05, abs=1e-9)


def test_lower_is_better_metric():
    """KL falls with rate: the same KL at half the rate is still -50 %, and a KL lower by 0.1 is BD-KL -0.1."""
    rate = (0.2, 0.4, 0.8, 1.6)
    kl = (1.7, 1.0, 0.45, 0.2)
    anchor = RateCurve("jpeg", rate, kl)
    assert compare(anchor, RateCurve("half", tuple(r / 2 for r in rate), kl), higher_is_better=False).bd_rate == pytest.approx(
        -50.0, abs=1e-9
    )
    assert compare(anchor, RateCurve("lower", rate, tuple(k - 0.1 for k in kl)), higher_is_better=False).bd_metric == pytest.approx(
        -0.1, abs=1e-9
    )


def test_monotone_front_keeps_only_strict_improvements():
    # sorted by rate: (0.1, .5) kept, (0.2, .45) worse -> dropped, (0.3, .6) kept, (0.3, .55) same rate, worse -> dropped, (0.4, .6) not better -> dropped
    assert monotone_front([0.3, 0.1, 0.2, 0.4, 0.3], [0.6, 0.5, 0.45, 0.6, 0.55]) == ([0.1, 0.3], [0.5, 0.6])
    assert monotone_front([0.1, 0.2, 0.4], [2.0, 1.0, 1.5], higher_is_better=False) == ([0.1, 0.2], [2.0, 1.0])


def test_non_monotone_points_are_dropped_and_reported():
    anchor = RateCurve("jpeg", (0.1, 0.2, 0.4, 0.8), (0.3, 0.5, 0.7, 0.8))
    noisy = RateCurve("noisy", (0.05, 0.1, 0.2, 0.4, 0.8), (0.3, 0.5, 0.45, 0.7, 0.8))  # 0.45 at 0.2 bpp is noise
    result = compare(anchor, noisy)
    assert (result.points, result.dropped) == (4, 1)
    # log-rate ranges: 0.1..0.8 inside 0.05..0.8, 3 of 4 octaves = 75 %, not below the 75 % warning level
    assert result.note == "1 non-monotone point dropped"
    assert math.isfinite(result.bd_rate) and result.bd_rate < 0


def test_what_cannot_be_computed_is_nan_with_a_note():
    anchor = RateCurve("jpeg", (0.1, 0.2, 0.4, 0.8), (0.3, 0.5, 0.7, 0.8))
    assert compare(anchor, RateCurve("one", (0.3,), (0.6,))).note == "one: fewer than 4 monotone points for pchip"
    far = compare(anchor, RateCurve("far", (4.0, 8.0, 16.0, 32.0), (0.9, 0.95, 0.97, 0.98)))
    assert math.isnan(far.bd_rate) and math.isnan(far.bd_metric)
    assert far.note == "no common metric range; no common rate range"
    three = RateCurve("three", (0.1, 0.2, 0.4), (0.3, 0.5, 0.7))
    assert compare(anchor, three).note == "three: fewer than 4 monotone points for pchip"
    # fewer points only when asked for, and never fewer than the interpolation needs
    assert math.isfinite(compare(anchor, three, min_points=3).bd_rate)
    assert compare(three, three, "cubic", min_points=2).note == "three: fewer than 4 monotone points for cubic"


def test_table_against_an_anchor():
    entries = [
        {"name": "jpeg", "results": {"bpp": [0.1, 0.2, 0.4], "agreement": [0.3, 0.5, 0.7]}},
        {"name": "half", "results": {"bpp": [0.05, 0.1, 0.2], "agreement": [0.3, 0.5, 0.7]}},
        {"name": "none", "results": {"bpp": [0.1, 0.2], "agreement": [None, None]}},
    ]
    assert bd_table(entries, None, "agreement")[0].note == "jpeg: fewer than 4 monotone points for pchip"
    rows = bd_table(entries, None, "agreement", min_points=2)
    assert [r.name for r in rows] == ["half", "none"]
    assert format_table(rows, "jpeg", "agreement", "pchip").splitlines() == [
        "BD against jpeg on agreement (pchip); BD-rate < 0: fewer bits at equal agreement",
        "curve  points  BD-rate [%]  BD-agreement  note",
        "half        3       -50.00           0.2  rate ranges overlap 33%",
        "none        0          nan           nan  none: fewer than 2 monotone points for pchip",
    ]


def test_bad_input():
    entries = [{"name": "jpeg", "results": {"bpp": [0.1], "agreement": [0.3]}}]
    with pytest.raises(ConfigError, match=r"^anchor 'webp' is not among the curves: jpeg$"):
        bd_table(entries, "webp", "agreement")
    with pytest.raises(ConfigError, match=r"^results of 'jpeg' have no metric 'kl'; they have: bpp, agreement$"):
        bd_table(entries, None, "kl")
    with pytest.raises(ConfigError, match=r"^unknown BD interpolation 'linear'; use one of pchip, akima, cubic$"):
        bd_rate([1, 2], [1, 2], [1, 2], [1, 2], "linear")
