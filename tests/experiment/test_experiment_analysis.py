"""The analysis: the seed/image bootstrap against known BD values, and honest verdicts when curves
share too little of their range to be compared."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mocodec.experiment.analysis import MethodData, analyse, comparable, verdict
from mocodec.experiment.report import bd_markdown, plain_words


def _method(name: str, bpp: np.ndarray, kl: np.ndarray, kind: str = "trained") -> MethodData:
    return MethodData(name, kind, [f"p{i}" for i in range(bpp.shape[1])], {"bpp": bpp, "kl": kl})


def test_half_the_rate_at_equal_kl_is_bd_rate_minus_50_percent():
    rng = np.random.default_rng(0)
    # 2 seeds x 4 points x 40 images; KL falls with the rate. The test curve reaches each
    # image's KL at exactly half its bits, in every seed, so every resample's BD-rate is
    # -50 % (a constant shift of log-rate) and the interval collapses onto it.
    bpp = np.tile(np.array([0.2, 0.4, 0.8, 1.6])[None, :, None], (2, 1, 40)) * rng.uniform(0.8, 1.2, 40)
    kl = np.tile(np.array([0.9, 0.5, 0.2, 0.1])[None, :, None], (2, 1, 40)) * rng.uniform(0.5, 1.5, 40)
    result = analyse([_method("mse", bpp, kl), _method("half", bpp / 2, kl)], {"kl": False}, "mse", resamples=200)
    (row,) = result["bd"]
    assert row["bd_rate"] == pytest.approx([-50.0, -50.0, -50.0], abs=1e-6)
    assert row["verdict"] == "better than mse" and row["points"] == 4


def test_a_difference_within_seed_noise_is_inside_the_noise():
    bpp = np.tile(np.array([0.2, 0.4, 0.8, 1.6])[None, :, None], (3, 1, 30))
    kl = np.tile(np.array([0.9, 0.5, 0.2, 0.1])[None, :, None], (3, 1, 30))
    # Another term whose three seeds scatter by ±20 % of the rate around the anchor's.
    other = bpp * np.array([0.8, 1.0, 1.2])[:, None, None]
    result = analyse([_method("mse", bpp, kl), _method("other", other, kl)], {"kl": False}, "mse", resamples=300)
    (row,) = result["bd"]
    low, high = row["bd_rate"][1:]
    assert low < 0 < high and row["verdict"] == "inside the noise"
    # The point estimate averages the seeds' rates (mean factor 1.0): no difference.
    assert row["bd_rate"][0] == pytest.approx(0.0, abs=1e-6)
    curve = result["curves"][1]
    assert curve["seeds"] == 3 and curve["points"][0]["bpp"][0] == pytest.approx(0.2)
    assert curve["points"][0]["bpp"][1] < 0.2 < curve["points"][0]["bpp"][2]


def test_half_the_rate_is_comparable_though_the_rate_ranges_overlap_little():
    # BD-rate averages over the metric range both curves reach (here all of it); the rate
    # ranges overlapping a half bounds BD-metric, not BD-rate.
    bpp = np.tile(np.array([0.2, 0.4, 0.8, 1.6])[None, :, None], (1, 1, 10))
    kl = np.tile(np.array([0.9, 0.5, 0.2, 0.1])[None, :, None], (1, 1, 10))
    (row,) = analyse([_method("mse", bpp, kl), _method("half", bpp / 2, kl)], {"kl": False}, "mse", resamples=20)["bd"]
    assert row["note"] == "rate ranges overlap 50%" and row["verdict"] == "better than mse"


def test_curves_that_share_little_of_their_metric_range_are_not_comparable():
    # The test curve's KL spans [0.05, 0.55], the anchor's [0.4, 0.9]: under a fifth of the joint range in common. However
    # narrow its interval, the BD-rate only compares the curves over that sliver.
    bpp = np.tile(np.array([0.2, 0.4, 0.8, 1.6])[None, :, None], (2, 1, 20))
    anchor = np.tile(np.array([0.9, 0.6, 0.45, 0.4])[None, :, None], (2, 1, 20))
    test = np.tile(np.array([0.55, 0.3, 0.1, 0.05])[None, :, None], (2, 1, 20))
    result = analyse([_method("mse", bpp, anchor), _method("jpeg", bpp, test, "baseline")], {"kl": False}, "mse", resamples=50)
    (row,) = result["bd"]
    assert row["note"].startswith("metric ranges overlap 18%") and math.isfinite(row["bd_rate"][0])
    assert row["bd_rate"][2] < 0  # an interval that would have said "better than mse"
    assert row["verdict"] == "not comparable"
    words = plain_words(row, "mse")
    assert words.startswith("not comparable: the two curves share too little of their kl range (metric ranges overlap 18%")
    assert "whatever its interval" in words
    table = bd_markdown({"bd": [row]}, 0.95).splitlines()
    assert table[0] == "| curve | metric | points | BD-rate [%] (95% interval) | BD-metric (95% interval) | verdict | note |"
    assert table[1] == "|---|---|---|---|---|---|---|" and table[2].startswith("| jpeg | kl | 4 | ")
    assert "| not comparable | metric ranges overlap 18%" in table[2]


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        ("", True),
        ("1 non-monotone point dropped", True),
        ("rate ranges overlap 40%", True),
        ("no common rate range", True),
        ("metric ranges overlap 54%; rate ranges overlap 67%; 1 non-monotone point dropped", False),
        ("no common metric range; rate ranges overlap 68%", False),
        ("mse: fewer than 4 monotone points for pchip", False),
    ],
)
def test_which_notes_leave_a_bd_rate_comparable(note, expected):
    assert comparable(note) is expected
    assert (verdict(-30.0, -10.0, "mse", note=note) == "better than mse") is expected
    assert verdict(math.nan, math.nan, "mse", note=note) == ("not computable" if expected else "not comparable")


def test_too_few_points_are_not_comparable_in_plain_words():
    row = {"curve": "webp", "metric": "kl", "verdict": "not comparable", "note": "webp: fewer than 4 monotone points for pchip"}
    assert plain_words(row, "mse").startswith("not comparable: a curve has too few points for the interpolation (webp: fewer than 4")
