"""LPIPS (Zhang et al., CVPR 2018) through the ``lpips`` package; a distance, lower is better.

The calibrated linear layers ship inside the package, so they work offline. The backbone
(AlexNet, VGG-16 or SqueezeNet 1.1) is torchvision's ImageNet classifier, which the package
would fetch from torchvision's hub on its own; here it is resolved with :mod:`mocodec.weights`
instead (downloaded once to ``$TORCH_HOME/hub/checkpoints``, or a local file passed as
``pretrained``), so an offline machine gets one line naming the file to place.

The network is frozen and held outside the module's state (see
:class:`~mocodec.losses.feature_similarity.FrozenNetworkDistortion`), so codec checkpoints
never carry it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from torch import Tensor, nn

from mocodec.backbones import import_torchvision
from mocodec.errors import ConfigError, WeightsError
from mocodec.losses.base import check_pair
from mocodec.losses.feature_similarity import FrozenNetworkDistortion
from mocodec.losses.registry import register_distortion
from mocodec.weights import PRETRAINED_FILE_HINT, fetch_url, load_checkpoint

# LPIPS backbone name -> torchvision weights enum whose ImageNet weights the package uses.
BACKBONE_WEIGHTS = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}


class LPIPS(FrozenNetworkDistortion):
    """``loss_per_image = score = LPIPS(x_hat, x)`` for [0, 1] images; 0 for identical images."""

    higher_is_better = False
    score_name = "lpips"

    def score(self, x_hat: Tensor, x: Tensor) -> Tensor:
        check_pair(x_hat, x)
        # x is detached so that the reference branch builds no graph; gradients reach x_hat only.
        return self.network(x_hat, x.detach(), normalize=True).flatten()

    def loss_per_image(self, x_hat: Tensor, x: Tensor) -> Tensor:
        return self.score(x_hat, x)


def backbone_weights_file(net: str) -> Path:
    """torchvision's ImageNet weights of LPIPS backbone ``net`` (downloaded once, cached)."""
    weights = getattr(import_torchvision().models, BACKBONE_WEIGHTS[net]).IMAGENET1K_V1
    return fetch_url(weights.url, what=f"the LPIPS {net} backbone (torchvision ImageNet weights)", alternative=PRETRAINED_FILE_HINT)


def load_backbone(network: nn.Module, path: str | Path) -> None:
    """Load a torchvision classifier state dict into the LPIPS trunk.

    The package splits torchvision's ``features`` into slices that keep the original indices
    (``slice2.3.weight`` is ``features.3.weight``), so each key maps back by dropping the slice.
    """
    state = load_checkpoint(path, what=f"LPIPS {network.pnet_type} backbone weights")
    trunk = network.net
    try:
        mapped = {key: state[f"features.{key.split('.', 1)[1]}"] for key in trunk.state_dict()}
        trunk.load_state_dict(mapped)
    except (KeyError, RuntimeError) as exc:
        raise WeightsError(f"{path} is not torchvision's {network.pnet_type} classifier ({' '.join(str(exc).split())[:120]})") from None


def lpips_network(net: str = "alex", pretrained: str | Path | bool | None = True) -> nn.Module:
    """An ``lpips.LPIPS`` network with calibrated linear layers and the chosen backbone weights.

    ``pretrained``: True for torchvision's ImageNet weights of the backbone, a file of them, or
    None/False for a random-init backbone (tests).
    """
    import lpips  # the one importer of lpips: it imports torchvision, seconds that listing names must not pay

    if net not in BACKBONE_WEIGHTS:
        raise ConfigError(f"unknown LPIPS backbone '{net}'; use one of {', '.join(BACKBONE_WEIGHTS)}")
    path = backbone_weights_file(net) if pretrained is True else pretrained
    with warnings.catch_warnings():  # the package calls torchvision's deprecated `pretrained=` argument
        warnings.simplefilter("ignore", UserWarning)
        # pnet_rand=True: the package must not download the backbone itself; it is loaded below.
        network = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if path:
        load_backbone(network, path)
    return network


@register_distortion(name="lpips", test_kwargs={"pretrained": None})
def lpips_distortion(net: str = "alex", pretrained: str | Path | bool | None = True) -> LPIPS:
    """LPIPS v0.1 with backbone ``net`` (``alex``, ``vgg``, ``squeeze``) and its ``pretrained`` weights."""
    return LPIPS(lpips_network(net, pretrained))
