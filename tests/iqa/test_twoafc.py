"""2AFC, bootstrap intervals and paired tests, against hand-computed and scipy-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mocodec.errors import ConfigError
from mocodec.iqa.significance import wilcoxon_p_value
from mocodec.iqa.twoafc import metric_preference, twoafc
from mocodec.utils.bootstrap import Resampler, bootstrap_interval, bootstrap_p_value


def test_twoafc_of_a_hand_computed_example():
    a, b, p = [1.0, 2.0, 3.0], [0.0, 2.0, 4.0], [0.75, 0.5, 1.0]
    # higher is better: the metric prefers A, ties, prefers B -> 0.75, 0.5, 0.0 -> mean 5/12
    assert twoafc(a, b, p, n_resamples=10).score == pytest.approx(5 / 12)
    # lower is better (a distance): B, tie, A -> 0.25, 0.5, 1.0 -> mean 7/12
    assert twoafc(a, b, p, higher_is_better=False, n_resamples=10).score == pytest.approx(7 / 12)


def test_a_perfect_metric_scores_the_mean_majority_and_equal_scores_score_half():
    p = np.array([0.9, 0.2, 0.6, 0.0])
    a = np.where(p > 0.5, 1.0, 0.0)  # scores that always side with the majority
    assert twoafc(a, 1 - a, p, n_resamples=10).score == pytest.approx(np.maximum(p, 1 - p).mean())
    assert twoafc(np.ones(4), np.ones(4), p, n_resamples=10).score == 0.5
    assert metric_preference([np.inf, 1.0], [np.inf, np.inf]).tolist() == [0.5, 0.0]


def test_bootstrap_interval_matches_scipy_percentile_bootstrap():
    rng = np.random.default_rng(0)
    values = rng.beta(2, 1, 400)
    ours = bootstrap_interval(lambda idx: float(values[idx].mean()), Resampler(400, n_resamples=4000, seed=1))
    ref = stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile", rng=np.random.default_rng(2))
    assert ours.estimate == pytest.approx(values.mean())
    # two Monte Carlo estimates of the same percentiles: equal within their sampling error (~0.002 here)
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.004)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.004)


def test_cluster_bootstrap_is_wider_when_items_repeat_within_groups():
    rng = np.random.default_rng(3)
    group_values = rng.normal(size=10)
    values = np.repeat(group_values, 20)  # 10 references, 20 identical pairs each
    groups = np.repeat(np.arange(10), 20)
    naive = bootstrap_interval(lambda idx: float(values[idx].mean()), Resampler(200, n_resamples=500))
    clustered = bootstrap_interval(lambda idx: float(values[idx].mean()), Resampler(200, groups, n_resamples=500))
    # 10 independent values, not 200: the interval is about sqrt(20) ≈ 4.5 times wider
    assert (clustered.high - clustered.low) > 3 * (naive.high - naive.low)


def test_paired_bootstrap_p_values():
    d_zero = np.zeros(50)
    assert bootstrap_p_value(lambda idx: float(d_zero[idx].mean()), Resampler(50, n_resamples=999)) == 1.0
    d_pos = np.linspace(0.1, 1.0, 50)
    # no resample reaches 0: the smallest p-value B resamples can give, 2 / (B + 1)
    assert bootstrap_p_value(lambda idx: float(d_pos[idx].mean()), Resampler(50, n_resamples=999)) == pytest.approx(2 / 1000)


def test_wilcoxon_of_a_hand_computed_example():
    # five positive differences: the exact two-sided p-value is 2 · (1/2)^5 = 0.0625
    assert wilcoxon_p_value([2, 3, 4, 5, 6], [1, 1, 1, 1, 1]) == pytest.approx(0.0625)
    assert wilcoxon_p_value([1, 2, 3], [1, 2, 3]) == 1.0


def test_bad_inputs():
    with pytest.raises(ConfigError) as exc:
        twoafc([1.0], [2.0], [1.5])
    assert str(exc.value) == "pair labels must be probabilities in [0, 1]"
    with pytest.raises(ConfigError) as exc:
        twoafc([1.0, np.nan], [2.0, 1.0], [1.0, 0.0])
    assert str(exc.value) == "a metric score is NaN; the metric failed on some images"
    with pytest.raises(ConfigError) as exc:
        Resampler(3, ["a", "b"])
    assert str(exc.value) == "2 group labels for 3 items"
