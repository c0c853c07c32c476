"""The evaluation MS-SSIM equals pytorch_msssim's (to 1e-6) on real photographs, every size and window, every distortion."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from pytorch_msssim import ms_ssim as reference_ms_ssim

from mocodec.evaluation.metrics import FidelityMeter
from mocodec.evaluation.msssim import MSSSIMReference, downsample, ms_ssim
from mocodec.losses.msssim import msssim as loss_msssim
from mocodec.losses.msssim import window_for

PHOTOS = {
    "astronaut": skimage.data.astronaut,
    "coffee": skimage.data.coffee,
    "chelsea": skimage.data.chelsea,
    "rocket": skimage.data.rocket,
}


def tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    buffer = io.BytesIO()
    Image.fromarray(x.mul(255).round().byte().permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=quality)
    return tensor(np.array(Image.open(buffer)))


def distortions(x: torch.Tensor) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    noisy = (x + 0.08 * torch.randn(x.shape, generator=g)).clamp(0, 1).mul(255).round().div(255)
    return {
        "identical": x.clone(),
        "jpeg 5": jpeg(x, 5),
        "jpeg 40": jpeg(x, 40),
        "jpeg 90": jpeg(x, 90),
        "noise": noisy,
        "flat": torch.full_like(x, 0.5),  # terms near 0: the ReLUs matter
        "inverted": 1 - x,
    }


def expected(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return reference_ms_ssim(y[None], x[None], data_range=1.0, size_average=False, win_size=window_for(*x.shape[-2:]))


@pytest.mark.parametrize("photo", sorted(PHOTOS))
@pytest.mark.parametrize("size", [(375, 500), (161, 240), (97, 133), (33, 40), (64, 64)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_equals_pytorch_msssim_on_every_image(photo, size):
    """Odd and even sides (the pooling's padding), the standard 11-tap window and the smaller ones small images get."""
    x = tensor(PHOTOS[photo]())[:, : size[0], : size[1]]
    reference = MSSSIMReference(x[None])
    for name, y in distortions(x).items():
        assert torch.allclose(reference.score(y[None]), expected(y, x), rtol=0, atol=1e-6), name


@pytest.mark.parametrize("size", [(375, 500), (188, 250), (47, 63), (4, 9), (5, 7)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_downsampling_is_pytorch_msssim_s_pooling_bit_for_bit(size):
    """Its additions in the pooling kernel's order: where MS-SSIM's terms nearly cancel, another order shows."""
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    pooled = torch.nn.functional.avg_pool2d(x, kernel_size=2, padding=[s % 2 for s in size])
    assert torch.equal(downsample(x), pooled)


def test_a_batch_scores_each_image_and_matches_the_loss_s_metric():
    x = torch.stack([tensor(PHOTOS[p]())[:, :200, :300] for p in ("astronaut", "coffee")])
    y = torch.stack([jpeg(img, 20) for img in x])
    assert torch.allclose(ms_ssim(y, x), loss_msssim(y, x), rtol=0, atol=1e-6)
    assert torch.allclose(ms_ssim(y, x)[1:], ms_ssim(y[1:], x[1:]), rtol=0, atol=1e-7)


def test_the_fidelity_meter_records_what_it_did_before():
    """PSNR and MS-SSIM of a decoded image, the window recorded; images under 33 px have no MS-SSIM."""
    x = tensor(PHOTOS["chelsea"]())[:, :120, :150]
    y = jpeg(x, 30)
    record = FidelityMeter(x, ("psnr-rgb", "ms-ssim")).measure(y)
    mse = (y - x).pow(2).mean().item()
    assert record["psnr-rgb"] == pytest.approx(10 * np.log10(1 / mse), abs=1e-4)
    assert record["ms-ssim"] == pytest.approx(expected(y, x).item(), abs=1e-6) and record["msssim_window"] == window_for(120, 150) == 7
    small = FidelityMeter(x[:, :32, :40], ("ms-ssim",)).measure(y[:, :32, :40])
    assert small == {"ms-ssim": None, "msssim_window": None}
