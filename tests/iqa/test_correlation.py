"""SRCC/KRCC/PLCC and the logistic fits, against hand-computed and scipy-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mocodec.errors import ConfigError
from mocodec.iqa.correlation import correlate, finite_scores, fit_logistic, logistic_4, logistic_5


def test_rank_correlations_of_a_hand_computed_example():
    # s swaps two neighbouring pairs of q's order: rank differences d = 0, 1, -1, 1, -1, so
    # SRCC = 1 - 6·Σd² / (n(n²-1)) = 1 - 24/120 = 0.8; 2 of 10 pairs are discordant:
    # KRCC = (8 - 2) / 10 = 0.6.
    r = correlate([1, 2, 3, 4, 5], [1, 3, 2, 5, 4])
    assert r.srcc == pytest.approx(0.8)
    assert r.krcc == pytest.approx(0.6)


def test_with_too_few_points_for_the_logistic_plcc_is_pearsons():
    q, s = [1.0, 2.0, 4.0, 7.0, 8.0], [2.0, 1.0, 5.0, 6.0, 9.0]
    r = correlate(q, s)  # 5 points cannot fit 5 parameters: the straight-line fallback
    assert r.fit.kind == "linear"
    assert r.plcc == pytest.approx(stats.pearsonr(q, s)[0])


def test_correlations_against_scipy_on_random_data():
    rng = np.random.default_rng(0)
    q = rng.normal(size=200)
    s = np.tanh(q) + 0.3 * rng.normal(size=200)
    r = correlate(q, s)
    assert r.srcc == pytest.approx(stats.spearmanr(q, s)[0], abs=1e-12)
    assert r.krcc == pytest.approx(stats.kendalltau(q, s)[0], abs=1e-12)
    assert r.plcc == pytest.approx(stats.pearsonr(r.fit(q), s)[0], abs=1e-12)
    # the fitted logistic nests the line (b1 = 0), so it fits at least as well as Pearson's line
    assert r.plcc >= stats.pearsonr(q, s)[0] - 1e-9
    assert r.rmse == pytest.approx(np.sqrt(np.mean((s - r.fit(q)) ** 2)))


def test_dmos_and_lower_is_better_metrics_are_oriented():
    rng = np.random.default_rng(1)
    q = rng.uniform(20, 40, 50)  # e.g. PSNR
    mos = q / 10 + rng.normal(0, 0.5, 50)
    reference = correlate(q, mos)
    # LIVE's DMOS is lower-is-better; an error metric (MSE-like) is lower-is-better too.
    dmos = correlate(q, -mos, subjective_higher_is_better=False)
    error_metric = correlate(-q, mos, metric_higher_is_better=False)
    for r in (dmos, error_metric):
        assert (r.srcc, r.krcc) == pytest.approx((reference.srcc, reference.krcc))
        assert r.plcc == pytest.approx(reference.plcc, abs=1e-6)
    assert reference.srcc > 0.5


@pytest.mark.parametrize(
    "kind, fn, true",
    [
        ("5", logistic_5, (4.0, 1.5, 5.0, 0.1, 2.0)),
        ("4", logistic_4, (9.0, 1.0, 5.0, 0.8)),
    ],
)
def test_logistic_fit_recovers_known_parameters(kind, fn, true):
    rng = np.random.default_rng(2)
    q = rng.uniform(0, 10, 400)
    s = fn(q, *true) + rng.normal(0, 0.01, q.size)
    fit = fit_logistic(q, s, kind)
    assert fit.kind == kind
    assert np.array(fit.params) == pytest.approx(np.array(true), rel=0.03, abs=0.02)
    assert correlate(q, fn(q, *true), logistic=kind).plcc == pytest.approx(1.0, abs=1e-9)


def test_infinite_scores_keep_their_rank_and_nan_is_an_error():
    assert finite_scores([1.0, np.inf, 2.0, -np.inf]).tolist() == [1.0, 2.0, 2.0, 1.0]
    with pytest.raises(ConfigError) as exc:
        finite_scores([1.0, np.nan, np.nan])
    assert str(exc.value) == "2 metric score(s) are NaN; the metric failed on those images"


def test_bad_inputs():
    with pytest.raises(ConfigError) as exc:
        correlate([1, 2], [1, 2])
    assert str(exc.value) == "correlations need at least 3 images, got 2"
    with pytest.raises(ConfigError) as exc:
        fit_logistic([1, 2, 3], [1, 2, 3], "3")
    assert str(exc.value) == "unknown logistic '3'; use 4 or 5 (parameters)"
