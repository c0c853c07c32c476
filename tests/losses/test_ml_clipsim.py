"""ML-CLIPSim on tiny random-init encoders, checked against plain-torch computations written here.

The independent reference reads the encoder with forward hooks on its transformer blocks
and computes the equation directly (normalise, hook, drop the class token, cosine, weighted
sum); it shares no code with :mod:`mocodec.losses.feature_similarity`.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mocodec.errors import ConfigError, WeightsError
from mocodec.losses import DISTORTIONS, create_distortion
from mocodec.losses.ml_clipsim import TINY_OPEN_CLIP_CFG

# open_clip's OPENAI_DATASET_MEAN / _STD, the statistics CLIP was trained with (Radford et al. 2021).
CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
TINY = DISTORTIONS.meta("ml-clipsim")["test_kwargs"]


def tiny(**kwargs):
    """The registry's tiny 12-block open_clip ViT (32 x 32 input), seeded so every build is the same."""
    torch.manual_seed(0)
    return create_distortion("ml-clipsim", **{**TINY, **kwargs})


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded inputs at the encoder's size: x and a distorted y."""
    g = torch.Generator().manual_seed(1234)
    x = torch.rand(3, 3, 32, 32, generator=g)
    y = (x + 0.15 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, y


def hooked_clip(visual, images: torch.Tensor, blocks: list[int]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Independent reference: block outputs (1-based numbers) via forward hooks, and the image embedding."""
    outputs = {}
    handles = [
        visual.transformer.resblocks[b - 1].register_forward_hook(lambda _m, _i, out, b=b: outputs.__setitem__(b, out)) for b in blocks
    ]
    with torch.no_grad():
        embedding = visual((images - CLIP_MEAN) / CLIP_STD)
    for h in handles:
        h.remove()
    return [outputs[b] for b in blocks], embedding


def reference_score(visual, x, y, blocks, layer_weights, global_weight, include_cls=False):
    """The paper's equation in plain torch, weights normalised to sum to 1."""
    tx, gx = hooked_clip(visual, x, blocks)
    ty, gy = hooked_clip(visual, y, blocks)
    first = 0 if include_cls else 1  # token 0 is the class token
    terms = [F.cosine_similarity(a[:, first:], b[:, first:], dim=-1).mean(-1) for a, b in zip(tx, ty)]
    terms.append(F.cosine_similarity(gx, gy, dim=-1))
    weights = torch.tensor([*layer_weights, global_weight], dtype=torch.float32)
    return torch.stack(terms, -1) @ (weights / weights.sum())


# --------------------------------------------------------------------------- reference values


def test_registry_default_matches_the_plain_torch_equation(pair):
    sim = tiny()
    visual = sim.network.visual
    x, y = pair
    blocks_out, _ = hooked_clip(visual, x, [3])
    assert blocks_out[0].shape == (3, 1 + 16, 16)  # batch-first: class token + (32/8)² patches, width 16
    expected = reference_score(visual, x, y, [3, 6, 9, 12], [1, 1, 1, 1], 1)
    with torch.no_grad():
        got = sim.score(y, x)
    assert torch.allclose(got, expected, atol=1e-5), (got, expected)
    assert (got < 0.999).all() and (got > 0.1).all()  # a real distortion, far from both ends


def test_weights_follow_the_equation(pair):
    x, y = pair
    sim = tiny(layers=(9, 3), layer_weights=(4, 1), global_weight=5)  # given out of order: weights follow layers
    expected = reference_score(sim.network.visual, x, y, [3, 9], [1, 4], 5)
    with torch.no_grad():
        assert torch.allclose(sim.score(y, x), expected, atol=1e-5)
        parts = sim.similarities(y, x)
    assert sim.component_names == ["layer3", "layer9", "global"]
    assert torch.allclose(sim.score(y, x), parts @ torch.tensor([0.1, 0.4, 0.5]), atol=1e-6)


def test_single_layer_with_weight_one_is_that_layers_mean_token_cosine(pair):
    x, y = pair
    sim = tiny(layers=(6,), layer_weights=(1,), global_weight=0)
    (tx,), _ = hooked_clip(sim.network.visual, x, [6])
    (ty,), _ = hooked_clip(sim.network.visual, y, [6])
    expected = F.cosine_similarity(tx[:, 1:], ty[:, 1:], dim=-1).mean(-1)
    with torch.no_grad():
        assert torch.allclose(sim.score(y, x), expected, atol=1e-6)


def test_global_term_alone_is_the_embedding_cosine(pair):
    x, y = pair
    sim = tiny(layer_weights=(0, 0, 0, 0), global_weight=1)
    _, gx = hooked_clip(sim.network.visual, x, [])
    _, gy = hooked_clip(sim.network.visual, y, [])
    with torch.no_grad():
        assert torch.allclose(sim.score(y, x), F.cosine_similarity(gx, gy, dim=-1), atol=1e-6)
        assert torch.allclose(tiny(layers=()).score(y, x), sim.score(y, x), atol=1e-6)  # no layers: the plain forward


def test_include_cls_adds_the_class_token(pair):
    x, y = pair
    sim = tiny(layers=(12,), global_weight=0, include_cls=True)
    expected = reference_score(sim.network.visual, x, y, [12], [1], 0, include_cls=True)
    with torch.no_grad():
        assert torch.allclose(sim.score(y, x), expected, atol=1e-6)


def test_layer_forms_all_and_negative(pair):
    x, y = pair
    assert tiny(layers="all").component_names == [f"layer{n}" for n in range(1, 13)] + ["global"]
    with torch.no_grad():
        assert torch.allclose(tiny(layers=(-1,)).score(y, x), tiny(layers=(12,)).score(y, x), atol=0)
    with pytest.raises(ConfigError) as err:
        tiny(layers=(3, 13))
    assert str(err.value) == "layer 13 does not exist: the encoder has 12 layers (1-based: 1..12, or -1..-12 from the end)"


# --------------------------------------------------------------------------- preprocessing


def test_resize_mode_is_antialiased_bicubic_to_the_input_size(pair):
    sim = tiny()
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, 48, 40, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    down = lambda t: F.interpolate(t, size=(32, 32), mode="bicubic", antialias=True, align_corners=False)  # noqa: E731
    with torch.no_grad():
        assert torch.allclose(sim.score(y, x), sim.score(down(y), down(x)), atol=1e-6)


def test_resize_mode_auto_resizes_for_a_vit():
    sim = tiny(resize_mode="auto")
    assert sim.resize_mode == "resize"
    assert sim.encoder_inputs(torch.rand(1, 3, 48, 40))[0].shape == (1, 3, 32, 32)


def test_tiles_average_the_crops(pair):
    sim = tiny(resize_mode="tiles")
    g = torch.Generator().manual_seed(6)
    x = torch.rand(2, 3, 64, 64, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    with torch.no_grad():
        quadrants = [sim.score(y[..., i : i + 32, j : j + 32], x[..., i : i + 32, j : j + 32]) for i in (0, 32) for j in (0, 32)]
        assert torch.allclose(sim.score(y, x), torch.stack(quadrants).mean(0), atol=1e-6)
        # a side that is no multiple of 32: ceil(40/32) = 2 crops at 0 and 8 cover it
        x40, y40 = x[..., :40, :32], y[..., :40, :32]
        crops = [sim.score(y40[..., i : i + 32, :], x40[..., i : i + 32, :]) for i in (0, 8)]
        assert torch.allclose(sim.score(y40, x40), torch.stack(crops).mean(0), atol=1e-6)


# --------------------------------------------------------------------------- metric properties


def test_identity_symmetry_and_batch_independence(pair):
    sim = tiny()
    x, y = pair
    with torch.no_grad():
        assert (sim.score(x, x) - 1).abs().max() <= 1e-6
        assert torch.allclose(sim.score(y, x), sim.score(x, y), atol=1e-6)
        alone = torch.cat([sim.score(y[i : i + 1], x[i : i + 1]) for i in range(3)])
        assert torch.allclose(sim.score(y, x), alone, atol=1e-6)


def test_gradients_reach_x_hat_only_and_the_encoder_stays_frozen(pair):
    sim = tiny()
    x = pair[0].clone().requires_grad_()
    x_hat = pair[1].clone().requires_grad_()
    sim.train()  # what a parent's .train() does to its children
    loss = sim(x_hat, x)
    loss.backward()
    assert loss.item() == pytest.approx(1 - sim.score(x_hat, x).mean().item(), abs=1e-6)
    assert x_hat.grad.abs().sum() > 0 and x.grad is None
    assert not sim.network.training and not sim.network.visual.training
    assert all(not p.requires_grad and p.grad is None for p in sim.network.parameters())
    assert list(sim.parameters()) == [] and sim.state_dict() == {}


# --------------------------------------------------------------------------- weights: local files, offline errors


def test_local_checkpoint_file_round_trip(tmp_path, pair):
    import open_clip

    torch.manual_seed(3)
    source = open_clip.create_model("ViT-B-32", pretrained=None, **TINY_OPEN_CLIP_CFG)
    path = tmp_path / "tiny_clip.pt"
    torch.save(source.state_dict(), path)
    sim = create_distortion("ml-clipsim", model="ViT-B-32", pretrained=str(path), model_cfg=TINY_OPEN_CLIP_CFG)
    x, y = pair
    expected = reference_score(source.visual.eval(), x, y, [3, 6, 9, 12], [1, 1, 1, 1], 1)
    with torch.no_grad():
        assert torch.allclose(sim.score(y, x), expected, atol=1e-5)


def test_default_openai_weights_offline_name_the_file_and_flag():
    # conftest sets HF_HUB_OFFLINE=1 and an empty hub cache
    with pytest.raises(WeightsError) as err:
        create_distortion("ml-clipsim")
    assert str(err.value) == (
        "cannot download ml-clipsim weights ViT-B-32/openai (HF_HUB_OFFLINE is set); download "
        "open_clip_model.safetensors or open_clip_pytorch_model.bin from https://huggingface.co/timm/vit_base_patch32_clip_224.openai "
        "and pass the file as pretrained=FILE (CLI: --pretrained FILE)"
    )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"pretrained": "/no/such/clip.pt"}, WeightsError, "ml-clipsim weights file /no/such/clip.pt does not exist; check the path"),
        (
            {"model": "ViT-X-99"},
            ConfigError,
            "unknown open_clip model 'ViT-X-99'; e.g. ViT-B-32, ViT-B-16, ViT-L-14, ViT-B-16-SigLIP (open_clip.list_models() lists all), or timm:<name> for a timm ViT",
        ),
        (
            {"resize_mode": "crop", "pretrained": None, "model_cfg": TINY_OPEN_CLIP_CFG},
            ConfigError,
            "unknown resize_mode 'crop'; use one of resize, tiles, none, auto",
        ),
        (
            {"resize_mode": "none", "pretrained": None, "model_cfg": TINY_OPEN_CLIP_CFG},
            ConfigError,
            "resize_mode 'none' needs an encoder that accepts any size; this one takes (32, 32): use 'resize' or 'tiles'",
        ),
    ],
)
def test_bad_configuration_messages(kwargs, error, message):
    with pytest.raises(error) as err:
        create_distortion("ml-clipsim", **kwargs)
    assert str(err.value) == message


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        create_distortion("ml-clipsim", model="ViT-B-32", pretrained="imagenet")
    assert str(err.value).startswith("unknown pretrained tag 'imagenet' for open_clip model ViT-B-32; known tags: openai, laion400m_e31,")


# --------------------------------------------------------------------------- the timm ViT backend

TIMM_TINY = {"img_size": 32, "patch_size": 8, "depth": 4, "embed_dim": 16, "num_heads": 2}


def test_timm_vit_matches_hooks_on_its_blocks(pair):
    torch.manual_seed(0)
    sim = create_distortion("ml-clipsim", model="timm:vit_tiny_patch16_224", pretrained=None, model_cfg=TIMM_TINY, layers=(2, 4))
    model = sim.network.model
    x, y = pair
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)

    def features(images):
        outputs = {}
        handles = [model.blocks[b - 1].register_forward_hook(lambda _m, _i, o, b=b: outputs.__setitem__(b, o)) for b in (2, 4)]
        with torch.no_grad():
            pooled = model.forward_head(model.forward_features((images - mean) / std), pre_logits=True)
        for h in handles:
            h.remove()
        return [outputs[2][:, 1:], outputs[4][:, 1:]], pooled  # drop the class token

    (ax, bx), gx = features(x)
    (ay, by), gy = features(y)
    terms = [
        F.cosine_similarity(ax, ay, dim=-1).mean(-1),
        F.cosine_similarity(bx, by, dim=-1).mean(-1),
        F.cosine_similarity(gx, gy, dim=-1),
    ]
    with torch.no_grad():
        assert torch.allclose(sim.score(y, x), torch.stack(terms, -1).mean(-1), atol=1e-5)
        assert (sim.score(x, x) - 1).abs().max() <= 1e-6


def test_timm_offline_and_unknown_tag_messages():
    with pytest.raises(WeightsError) as err:
        create_distortion("ml-clipsim", model="timm:vit_base_patch16_224", pretrained="augreg2_in21k_ft_in1k")
    assert str(err.value) == (
        "cannot download ml-clipsim weights vit_base_patch16_224.augreg2_in21k_ft_in1k (HF_HUB_OFFLINE is set); download "
        "model.safetensors or pytorch_model.bin from https://huggingface.co/timm/vit_base_patch16_224.augreg2_in21k_ft_in1k "
        "and pass the file as pretrained=FILE (CLI: --pretrained FILE)"
    )
    with pytest.raises(ConfigError) as err:
        create_distortion("ml-clipsim", model="timm:vit_base_patch16_224")  # default tag 'openai' is no timm tag of it
    assert str(err.value).startswith(
        "unknown pretrained tag 'openai' for timm model vit_base_patch16_224; known tags: augreg2_in21k_ft_in1k,"
    )


def test_encoder_stays_frozen_and_out_of_a_codec_modules_checkpoint():
    """Through the training LightningModule: .train(), parameters (optimisers), state_dict (checkpoints)."""
    training = pytest.importorskip("mocodec.training")

    def module():
        torch.manual_seed(0)
        distortions = {"mse": 1.0, "ml-clipsim": {"weight": 0.5, **TINY}}
        return training.CodecModule("bmshj2018-hyperprior", 1, codec_kwargs={"N": 8, "M": 12}, distortions=distortions)

    trained = module()
    term = trained.loss.terms["ml_clipsim"]
    trained.train()
    assert trained.codec.training and not term.network.training
    encoder_params = {id(p) for p in term.network.parameters()}
    assert encoder_params and not encoder_params & {id(p) for p in trained.parameters()}
    state = trained.state_dict()
    assert not [k for k in state if k.startswith("loss.terms.")]
    module().load_state_dict(state, strict=True)
