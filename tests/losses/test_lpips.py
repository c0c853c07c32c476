"""LPIPS through the ``lpips`` package, with the backbone resolved by mocodec (random-init backbones here)."""

from __future__ import annotations

import urllib.error

import lpips
import pytest
import torch
import torchvision
from torch import nn

from mocodec.errors import ConfigError, WeightsError
from mocodec.losses import DISTORTIONS, create_distortion
from mocodec.weights import cached_url_path


@pytest.fixture(scope="module")
def term():
    torch.manual_seed(0)
    return create_distortion("lpips", **DISTORTIONS.meta("lpips")["test_kwargs"])


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(2, 3, 64, 64, generator=g)
    return x, (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)


def test_identity_is_zero_and_direction(term, pair):
    x, _ = pair
    with torch.no_grad():
        assert term.score(x, x).tolist() == [0.0, 0.0]
    assert term.higher_is_better is False and term.score_name == "lpips"


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")  # lpips calls torchvision's old API
def test_equals_the_package_with_the_same_random_backbone(term, pair):
    """The package's own LPIPS (random trunk, calibrated linear layers), given our network's weights."""
    x, y = pair
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    reference.load_state_dict(term.network.state_dict())
    with torch.no_grad():
        expected = reference(y, x, normalize=True).flatten()  # normalize: [0, 1] inputs to [-1, 1]
        got = term.score(y, x)
    assert torch.allclose(got, expected, atol=1e-6)
    assert (got > 0).all()
    assert term(y, x).item() == pytest.approx(expected.mean().item(), abs=1e-6)


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
def test_backbone_file_loads_like_the_packages_own_pretrained_path(tmp_path, pair, monkeypatch):
    """A torchvision AlexNet state dict file gives the network the package builds from that AlexNet."""
    torch.manual_seed(1)
    alexnet = torchvision.models.alexnet()
    path = tmp_path / "alexnet.pth"
    torch.save({k: v for k, v in alexnet.state_dict().items() if k.startswith("features.")}, path)  # the trunk LPIPS uses
    ours = create_distortion("lpips", net="alex", pretrained=str(path))
    # the package's pretrained path calls torchvision.models.alexnet(pretrained=True): hand it this AlexNet
    monkeypatch.setattr(torchvision.models, "alexnet", lambda **_: alexnet)
    reference = lpips.LPIPS(net="alex", pnet_rand=False, verbose=False)
    x, y = pair
    with torch.no_grad():
        assert torch.allclose(ours.score(y, x), reference(y, x, normalize=True).flatten(), atol=1e-6)


def test_gradients_reach_x_hat_only_and_nothing_is_state(term, pair):
    x = pair[0].clone().requires_grad_()
    x_hat = pair[1].clone().requires_grad_()
    term(x_hat, x).backward()
    assert x_hat.grad.abs().sum() > 0 and x.grad is None
    assert all(p.grad is None and not p.requires_grad for p in term.network.parameters())
    parent = nn.ModuleDict({"codec": nn.Conv2d(3, 3, 1), "lpips": term})
    parent.train()
    assert not term.network.training
    assert set(parent.state_dict()) == {"codec.weight", "codec.bias"}


def test_offline_backbone_names_the_file_and_flag(monkeypatch):
    def offline(*_args, **_kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)  # hermetic even on a machine with network
    url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    with pytest.raises(WeightsError) as err:
        create_distortion("lpips")
    assert str(err.value) == (
        f"cannot download the LPIPS alex backbone (torchvision ImageNet weights) from {url} (URLError); "
        f"place that file at {cached_url_path(url)}, or pass pretrained=FILE (CLI: --pretrained FILE)"
    )


def test_bad_backbone_messages(tmp_path):
    with pytest.raises(ConfigError) as err:
        create_distortion("lpips", net="resnet")
    assert str(err.value) == "unknown LPIPS backbone 'resnet'; use one of alex, vgg, squeeze"
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError) as err:
        create_distortion("lpips", pretrained=str(path))
    assert str(err.value) == f"{path} is not torchvision's alex classifier ('features.0.weight')"
