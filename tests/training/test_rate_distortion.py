"""RateDistortionLoss: each term against reference values, shares, balancing, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from mocodec.errors import ConfigError, UnknownNameError
from mocodec.losses import RateDistortionLoss

# Constant images 0.2 (reference) and 0.6 (decoded): no structure, so MS-SSIM is only the
# luminance term at the coarsest scale, l = (2ab + C1) / (a² + b² + C1) with C1 = 0.01²,
# raised to that scale's weight 0.1333 (Wang 2003, pytorch_msssim's weights):
# l = 0.2401 / 0.4001, MS-SSIM = l ** 0.1333 = 0.934194, loss 1 - MS-SSIM = 0.065806.
REF, DEC = 0.2, 0.6
MSSSIM_LOSS = 1 - (0.2401 / 0.4001) ** 0.1333
MSE_TERM = 255**2 * (DEC - REF) ** 2  # CompressAI's scale: 255² · MSE = 10404


def constant_pair(n: int = 1, size: int = 64) -> tuple[dict, torch.Tensor]:
    x = torch.full((n, 3, size, size), REF)
    x_hat = torch.full((n, 3, size, size), DEC)
    # y: 4 x 2 x 2 symbols at 1 bit each, z: 2 symbols at 2 bits: 20 bits per image
    likelihoods = {"y": torch.full((n, 4, 2, 2), 0.5), "z": torch.full((n, 2, 1, 1), 0.25)}
    return {"x_hat": x_hat, "likelihoods": likelihoods}, x


def test_terms_against_reference_values():
    output, x = constant_pair(n=2)
    out = RateDistortionLoss(0.01, {"mse": 1.0, "msssim": 3.0})(output, x)
    assert out["bpp"].item() == pytest.approx(20 / (64 * 64))  # Σ −log2 p over N·H·W
    assert out["mse"].item() == pytest.approx(MSE_TERM, rel=1e-6)
    assert out["msssim"].item() == pytest.approx(MSSSIM_LOSS, abs=1e-5)  # float32 variances: ~5e-6
    assert out["distortion"].item() == pytest.approx(MSE_TERM + 3 * out["msssim"].item(), rel=1e-6)
    assert out["loss"].item() == pytest.approx(out["bpp"].item() + 0.01 * out["distortion"].item(), rel=1e-6)


def test_shares_of_the_loss_sum_to_one():
    output, x = constant_pair()
    out = RateDistortionLoss(0.01, {"mse": 1.0, "msssim": 3.0})(output, x)
    loss = out["loss"].item()
    assert out["share_bpp"].item() == pytest.approx(out["bpp"].item() / loss)
    assert out["share_msssim"].item() == pytest.approx(0.01 * 3.0 * out["msssim"].item() / loss)
    assert sum(out[k].item() for k in ("share_bpp", "share_mse", "share_msssim")) == pytest.approx(1.0)


def test_mse_alone_equals_compressai_loss():
    from compressai.losses import RateDistortionLoss as CompressAILoss

    torch.manual_seed(0)
    x, x_hat = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    output = {"x_hat": x_hat, "likelihoods": {"y": torch.rand(2, 4, 2, 3), "z": torch.rand(2, 2, 1, 1)}}
    ours = RateDistortionLoss(0.0130, {"mse": 1.0})(output, x)
    theirs = CompressAILoss(lmbda=0.0130)(output, x)
    torch.testing.assert_close(ours["loss"], theirs["loss"])
    torch.testing.assert_close(ours["bpp"], theirs["bpp_loss"])


def test_balancing_rescales_terms_to_the_first_after_warmup():
    output, x = constant_pair()
    loss = RateDistortionLoss(0.01, {"mse": 1.0, "msssim": 0.5}, balance_warmup=2).train()
    first = loss(output, x)  # warm-up: raw terms
    assert first["distortion"].item() == pytest.approx(MSE_TERM + 0.5 * first["msssim"].item(), rel=1e-6)
    loss(output, x)
    third = loss(output, x)  # the running means are exactly the (constant) values
    assert third["scale_msssim"].item() == pytest.approx(MSE_TERM / first["msssim"].item(), rel=1e-5)
    # each term now weighs in at its weight times the reference term
    assert third["distortion"].item() == pytest.approx((1.0 + 0.5) * MSE_TERM, rel=1e-5)
    assert third["share_msssim"].item() == pytest.approx(0.5 * third["share_mse"].item(), rel=1e-5)


def test_balancing_state_survives_a_state_dict_round_trip_and_ignores_nonfinite_steps():
    output, x = constant_pair()
    loss = RateDistortionLoss(0.01, {"mse": 1.0, "msssim": 1.0}, balance_warmup=1).train()
    loss(output, x)
    poisoned = {"x_hat": torch.full_like(x, float("nan")), "likelihoods": output["likelihoods"]}
    loss(poisoned, x)
    assert int(loss.balance_steps) == 1 and torch.isfinite(loss.term_means).all()
    restored = RateDistortionLoss(0.01, {"mse": 1.0, "msssim": 1.0}, balance_warmup=1)
    restored.load_state_dict(loss.state_dict())
    torch.testing.assert_close(restored.scales(), loss.scales())
    assert restored.scales()[1].item() == pytest.approx(MSE_TERM / MSSSIM_LOSS, rel=1e-4)


def test_no_balancing_in_eval_mode_updates():
    output, x = constant_pair()
    loss = RateDistortionLoss(0.01, {"mse": 1.0}, balance_warmup=0).eval()
    loss(output, x)
    assert int(loss.balance_steps) == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lmbda": -0.5}, "lambda must be a finite number >= 0, got -0.5"),
        ({"lmbda": math.nan}, "lambda must be a finite number >= 0, got nan"),
        ({"distortions": {"mse": -1.0}}, "weight of distortion 'mse' must be a finite number >= 0, got -1.0"),
        ({"distortions": {"msssim": {"weight": "a lot"}}}, "weight of distortion 'msssim' must be a finite number >= 0, got a lot"),
        ({"balance_warmup": -3}, "balance_warmup must be a whole number of steps >= 0 or null, got -3"),
        ({"balance_momentum": 1.0}, r"balance_momentum must be in \[0, 1\), got 1.0"),
    ],
)
def test_bad_values(kwargs, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        RateDistortionLoss(**kwargs)


def test_unknown_distortion_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match=r"^unknown distortion 'msse'; known distortions: .*\bmse, msssim\b"):
        RateDistortionLoss(distortions={"msse": 1.0})
