"""Distortion families (every registry entry) and PSNR matching on images with known PSNRs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mocodec.errors import ConfigError
from mocodec.iqa.distortions import FAMILIES, CodecFamily, create_family
from mocodec.iqa.pairs import REPORT_TOLERANCES, matched_pairs, orient_and_sample, pair_counts
from mocodec.losses import psnr


@pytest.mark.parametrize("name", FAMILIES.names())
def test_every_family_degrades_more_at_its_more_severe_levels(name, photo_crop):
    family = create_family(name)
    x = photo_crop[0]
    psnrs = []
    for level in (family.levels[0], family.levels[-1]):
        y = family.distort(x, level, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
        psnrs.append(float(psnr(y[None], x[None])))
    first, last = psnrs
    assert math.isfinite(first) and math.isfinite(last)
    if isinstance(family, CodecFamily):  # levels are qualities, ascending: the last is the mildest
        assert first < last
    else:  # levels are severities, mildest first
        assert first > last


def test_noise_is_reproducible_from_its_generator(photo_crop):
    family = create_family("gaussian-noise")
    draw = lambda seed: family.distort(photo_crop[0], 0.05, torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(draw(7), draw(7)) and not torch.equal(draw(7), draw(8))


def test_family_specs():
    assert create_family("jpeg=10,30").levels == (10.0, 30.0)
    assert create_family("avif=1-3").levels == (1.0, 2.0, 3.0)
    assert create_family("gaussian-blur=0.5,2").levels == (0.5, 2.0)
    published = create_family("bmshj2018-hyperprior@pretrained=2,4")  # no download until a level is applied
    assert (published.name, published.levels) == ("bmshj2018-hyperprior", (2.0, 4.0))
    with pytest.raises(ConfigError) as exc:
        create_family("bmshj2018-hyperprior")
    assert str(exc.value) == (
        "learned codec 'bmshj2018-hyperprior' has random weights offline; give ckpt:PATH (a trained checkpoint) "
        "or bmshj2018-hyperprior@pretrained (published weights)"
    )
    with pytest.raises(ConfigError) as exc:
        create_family("gaussian-blur=-1")
    assert str(exc.value) == "cannot read the levels of 'gaussian-blur=-1'; write positive numbers, e.g. gaussian-blur=0.5,1,2"
    with pytest.raises(ConfigError) as exc:
        create_family("pixelate")
    assert str(exc.value).startswith("unknown distortion family 'pixelate'; known families: avif, colour-shift, contrast, ")


def shifted(x: torch.Tensor, target_psnr: float) -> torch.Tensor:
    """``x`` plus a constant offset δ with 20·log10(1/δ) = target (no clipping: x stays in [0.2, 0.8])."""
    return x + 10 ** (-target_psnr / 20)


def test_matching_on_images_with_known_psnrs():
    x = 0.2 + 0.6 * torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    targets = [30.0, 30.3, 30.9, 35.0, 30.1]
    types = ["jpeg", "blur", "jpeg", "noise", "jpeg"]
    measured = [float(psnr(shifted(x, t), x)) for t in targets]
    assert measured == pytest.approx(targets, abs=1e-4)
    # different types within 0.5 dB: (0, 1) 0.3 dB; (1, 4) 0.2 dB; (1, 2) is 0.6 dB; (0, 2), (0, 4) share a type
    assert matched_pairs(types, measured, 0.5) == [(0, 1), (1, 4)]
    assert matched_pairs(types, measured, 1.0) == [(0, 1), (1, 2), (1, 4)]
    assert matched_pairs(types, measured, 0.1) == []
    counts = pair_counts([(types, measured), (["a", "b"], [20.0, 20.05])], REPORT_TOLERANCES)
    assert counts == {0.1: 1, 0.25: 2, 0.5: 3, 1.0: 4, 2.0: 4}


def test_unchanged_images_never_match():
    assert matched_pairs(["a", "b", "c"], [math.inf, math.inf, 40.0], 100.0) == []
    with pytest.raises(ConfigError) as exc:
        matched_pairs(["a"], [1.0], -0.5)
    assert str(exc.value) == "the PSNR tolerance must be a non-negative number of dB, got -0.5"


def test_orientation_and_sampling_are_seeded():
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    first = orient_and_sample(pairs, np.random.default_rng(5), max_pairs=7)
    assert first == orient_and_sample(pairs, np.random.default_rng(5), max_pairs=7)
    assert len(first) == 7 and {tuple(sorted(p)) for p in first} <= set(pairs)
    swapped = orient_and_sample(pairs, np.random.default_rng(5))
    assert {tuple(sorted(p)) for p in swapped} == set(pairs)
    assert 0 < sum(a > b for a, b in swapped) < len(pairs)  # some pairs swapped, not all
