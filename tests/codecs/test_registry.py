"""Every codec in the registry, swept with a tiny configuration (as timm's tests do)."""

from __future__ import annotations

import pytest
import torch

from mocodec import bitstream
from mocodec.codecs import CODECS, create_codec, is_classic, list_codecs, load_codec
from mocodec.errors import ConfigError, UnknownNameError

LEARNED = [n for n in list_codecs() if not is_classic(n)]
CLASSIC = [n for n in list_codecs() if is_classic(n)]


def tiny(name: str, quality: int = 1):
    torch.manual_seed(0)
    return create_codec(name, quality=quality, **CODECS.meta(name).get("test_kwargs", {})).eval()


def test_registry_holds_the_issue_codecs():
    for name in ["bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "mbt2018", "jpeg", "webp", "avif"]:
        assert name in CODECS
    assert "bmshj2018_hyperprior" in CODECS  # underscores are accepted too


@pytest.mark.parametrize("name", LEARNED)
def test_learned_codec_forward_contract(name, photo_crop):
    codec = tiny(name)
    out = codec(photo_crop)
    assert out["x_hat"].shape == photo_crop.shape
    assert out["likelihoods"] and all(((lk > 0) & (lk <= 1)).all() for lk in out["likelihoods"].values())


@pytest.mark.parametrize("name", LEARNED)
def test_decompress_equals_eval_forward(name, photo_crop):
    """The entropy-coded path decodes exactly the reconstruction forward() computes in eval mode."""
    codec = tiny(name)
    with torch.no_grad():
        expected = codec(photo_crop)["x_hat"].clamp(0, 1)
        coded = codec.compress(photo_crop)
        decoded = codec.decompress(coded["strings"], coded["shape"])["x_hat"]
    assert coded["shape"] == (96, 128)
    assert decoded.shape == photo_crop.shape
    # One wrong symbol moves pixels by far more than float rounding does.
    assert torch.allclose(decoded, expected, atol=1e-5), (decoded - expected).abs().max()


@pytest.mark.parametrize("name", LEARNED + CLASSIC)
@pytest.mark.parametrize("size", [(1, 1), (17, 33), (65, 64)])
def test_any_size_round_trips_through_the_container(name, size):
    codec = tiny(name, quality=1 if name in LEARNED else 50)
    x = torch.rand(3, *size, generator=torch.Generator().manual_seed(1))
    data = bitstream.encode(codec, x)
    x_hat, info = bitstream.decode(codec, data)
    assert x_hat.shape == x.shape and info.channels == 3
    assert torch.isfinite(x_hat).all()


@pytest.mark.parametrize("name", CLASSIC)
def test_classic_codec_quality_knob_orders_rate_and_error(name, photo_crop):
    errors, sizes = [], []
    for q in (10, 50, 95):
        codec = create_codec(name, quality=q)
        data = bitstream.encode(codec, photo_crop[0])
        x_hat, _ = bitstream.decode(codec, data)
        sizes.append(len(data))
        errors.append(float((x_hat - photo_crop[0]).pow(2).mean()))
    assert sizes[0] < sizes[1] < sizes[2]
    assert errors[0] > errors[1] > errors[2]


def test_file_bpp_agrees_with_likelihood_bpp(astronaut):
    """File bpp >= the likelihood estimate and within 2% of it once the tables are rebuilt.

    A q1 hyperprior of CompressAI's size at random init (seed 0), 512x512 astronaut;
    ``update(force=True, update_quantiles=True)`` derives the CDFs from the current model.
    """
    from mocodec.evaluation.coding import code_image

    codec = load_codec("bmshj2018-hyperprior", 1)
    codec.update(force=True, update_quantiles=True)
    x = torch.from_numpy(astronaut).permute(2, 0, 1).float().div(255)
    coded = code_image(codec, x)
    assert coded.bpp >= coded.bpp_estimated
    assert coded.bpp <= 1.02 * coded.bpp_estimated, (coded.bpp, coded.bpp_estimated)


def test_unknown_codec_lists_known_names():
    with pytest.raises(UnknownNameError, match="unknown codec 'nope'; known codecs: avif, .*jpeg"):
        create_codec("nope")


@pytest.mark.parametrize("name,quality", [("bmshj2018-hyperprior", 9), ("mbt2018", 0), ("jpeg", 101), ("webp", 0)])
def test_quality_out_of_range(name, quality):
    with pytest.raises(ConfigError, match=f"quality {quality} is out of range for {name}: use 1-"):
        create_codec(name, quality=quality)


def test_fresh_codecs_are_seeded_so_files_decode_anywhere():
    a, b = load_codec("bmshj2018-hyperprior", 1, N=8, M=12), load_codec("bmshj2018-hyperprior", 1, N=8, M=12)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
