"""MLIC++: published size, exact two-pass coding, causality of the contexts, training, official checkpoints."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from mocodec import bitstream
from mocodec.codecs import create_codec, load_codec
from mocodec.codecs.layers import ANCHOR, NON_ANCHOR, gather, keep, linear_attention, merge, scatter
from mocodec.codecs.mlicpp import SteQuantizer, convert_official_state_dict
from mocodec.codecs.zoo import TINY_MLICPP as TINY
from mocodec.errors import ConfigError, WeightsError
from mocodec.losses import RateDistortionLoss


def tiny(quality: int = 1):
    torch.manual_seed(0)
    return create_codec("mlicpp-tiny", quality=quality).eval()


def _capture_latent(codec) -> list[torch.Tensor]:
    """Record every ŷ that reaches the synthesis transform (forward and decompress alike)."""
    seen: list[torch.Tensor] = []
    codec.g_s.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    return seen


# --- size -------------------------------------------------------------------------------


def test_default_configuration_has_the_published_parameter_count():
    """83,501,408: the official MLIC++ (2024-04 release), sum(p.numel()) of its published model.

    The per-part figures below are this implementation's; two are derived by hand:
    * entropy_bottleneck: 192 channels x 61 (CompressAI's density with filters (3,3,3,3):
      33 matrix + 13 bias + 12 factor entries, and 3 quantiles) = 11,712;
    * local_context, per slice of 32 channels: LayerNorm 64 + qkv 32*96+96 + bias table 9*9*2
      + fusion 32*64*25+64 + proj 64*64+64 + LayerNorm 128 + MLP (64*128+128) + (128*64+64)
      = 75,522, x 10 slices = 755,220.
    """
    codec = create_codec("mlicpp")
    assert (codec.N, codec.M, codec.num_slices) == (192, 320, 10)
    parts: dict[str, int] = {}
    for name, p in codec.named_parameters():
        part = name.split(".")[0] if not name.startswith("slices.") else name.split(".")[2]
        parts[part] = parts.get(part, 0) + p.numel()
    assert parts["entropy_bottleneck"] == 192 * 61
    assert parts["local_context"] == 10 * (
        64 + 32 * 96 + 96 + 9 * 9 * 2 + 32 * 64 * 25 + 64 + 64 * 64 + 64 + 128 + 64 * 128 + 128 + 128 * 64 + 64
    )
    assert parts == {
        "g_a": 4_396_352,
        "g_s": 14_700_172,
        "h_a": 1_881_024,
        "h_s": 16_685_600,
        "entropy_bottleneck": 11_712,
        "local_context": 755_220,
        "channel_context": 5_810_112,
        "inter_context": 4_633_344,
        "intra_context": 659_232,
        "anchor_parameters": 3_837_440,
        "non_anchor_parameters": 4_226_560,
        "anchor_lrp": 12_952_320,
        "non_anchor_lrp": 12_952_320,
    }
    assert sum(parts.values()) == 83_501_408


def test_invalid_sizes_and_qualities_are_refused():
    with pytest.raises(
        ConfigError, match=r"^MLIC\+\+ needs M divisible into num_slices slices of an even channel count, got M=30, num_slices=4$"
    ):
        create_codec("mlicpp-tiny", M=30)
    # 7 slices of 24 channels = 168 channels, 168 // 32 = 5 heads, 168 % 5 != 0
    with pytest.raises(
        ConfigError,
        match=r"^MLIC\+\+ slice 7 sees 168 decoded channels, which do not split into 5 attention heads of ~32; choose M/num_slices as a multiple of 32$",
    ):
        create_codec("mlicpp-tiny", M=24 * 14, num_slices=14)
    with pytest.raises(ConfigError, match=r"^quality 7 is out of range for mlicpp: use 1-6$"):
        create_codec("mlicpp", quality=7)


# --- building blocks ---------------------------------------------------------------------


def test_checkerboard_anchors_are_odd_parity_and_gather_scatter_round_trips():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    assert ANCHOR.mask(2, 3).tolist() == [[False, True, False], [True, False, True]]
    assert torch.equal(ANCHOR.mask(4, 6), ~NON_ANCHOR.mask(4, 6))
    anchors = gather(x, ANCHOR)
    assert anchors.shape == (2, 3, 12)
    assert anchors[0, 0, :3].tolist() == [1.0, 3.0, 5.0]  # row 0: odd columns, raster order
    assert torch.equal(scatter(anchors, ANCHOR, (4, 6)), keep(x, ANCHOR))
    assert torch.equal(merge(keep(x, ANCHOR), keep(x, NON_ANCHOR)), x)


def test_linear_attention_matches_its_formula_head_by_head():
    """(softmax_L(K) Vᵀ)ᵀ softmax_C(Q) per head, computed independently with explicit loops."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 6, n, generator=g) for n in (5, 7, 7))
    out = linear_attention(q, k, v, heads=2)
    for b in range(2):
        for h in range(2):
            c = slice(3 * h, 3 * h + 3)
            ks, qs = k[b, c].softmax(dim=1), q[b, c].softmax(dim=0)
            expected = torch.stack([sum(ks[d, j] * v[b, c][:, j] for j in range(7)) for d in range(3)])  # d x e
            expected = torch.einsum("de,dq->eq", expected, qs)
            torch.testing.assert_close(out[b, c], expected)


def test_contexts_are_causal_in_the_coding_order():
    """Changing a slice's non-anchors changes no Gaussian of that slice or earlier ones.

    (Their parameters come from the hyperprior, earlier slices and this slice's anchors only,
    which is what lets the decoder compute them.) Later slices do see them.
    """
    codec = tiny()
    c = codec.slice_channels
    g = torch.Generator().manual_seed(0)
    y = 3 * torch.randn(1, codec.M, 8, 8, generator=g)
    hyper = torch.randn(1, 2 * codec.M, 8, 8, generator=g)
    y2 = y.clone()
    y2[:, c : 2 * c] += 5 * keep(torch.ones(1, c, 8, 8), NON_ANCHOR)  # slice 1's non-anchors
    with torch.no_grad():
        _, scales, means = codec.code_slices(y, hyper, SteQuantizer())
        _, scales2, means2 = codec.code_slices(y2, hyper, SteQuantizer())
    assert torch.equal(scales[:, : 2 * c], scales2[:, : 2 * c]) and torch.equal(means[:, : 2 * c], means2[:, : 2 * c])
    assert not torch.equal(means[:, 2 * c :], means2[:, 2 * c :])


# --- coding --------------------------------------------------------------------------------


def test_forward_shapes_and_finite_rate(photo_crop):
    codec = tiny()
    for training in (True, False):
        codec.train(training)
        out = codec(photo_crop)
        assert out["x_hat"].shape == photo_crop.shape
        # 96 x 128 is padded to 128 x 128: y is 1/16 of it, z 1/64.
        assert out["likelihoods"]["y"].shape == (1, 32, 8, 8)
        assert out["likelihoods"]["z"].shape == (1, 16, 2, 2)
        bpp = RateDistortionLoss()(out, photo_crop)["bpp"]
        assert torch.isfinite(bpp) and bpp > 0


@pytest.mark.parametrize("size", [(96, 128), (37, 50), (70, 129)])
def test_decoded_latent_equals_the_forward_latent_bit_exactly(size, astronaut):
    codec = tiny()
    x = torch.from_numpy(astronaut[: size[0], : size[1]]).permute(2, 0, 1).float().div(255).unsqueeze(0)
    latents = _capture_latent(codec)
    with torch.no_grad():
        expected = codec(x)["x_hat"].clamp(0, 1)
        coded = codec.compress(x)
        decoded = codec.decompress(coded["strings"], coded["shape"])["x_hat"]
    assert coded["shape"] == size and decoded.shape == x.shape
    forward_latent, decoded_latent = latents
    assert torch.equal(decoded_latent, forward_latent)
    assert torch.equal(decoded, expected)


def test_coded_size_agrees_with_likelihood_bpp(astronaut):
    """The rANS strings cost what the likelihoods promise, plus at most 3%.

    Measured at random init (seed 0) on the 512 x 512 astronaut after rebuilding the tables:
    0.02866 bpp estimated, 0.02905 bpp coded (256 + 696 bytes), a ratio of 1.014.
    """
    from mocodec.losses import bpp_from_likelihoods

    codec = tiny()
    codec.update(force=True, update_quantiles=True)
    x = torch.from_numpy(astronaut).permute(2, 0, 1).float().div(255).unsqueeze(0)
    with torch.no_grad():
        estimated = bpp_from_likelihoods(codec(x)["likelihoods"], 512 * 512).item()
    coded = 8 * sum(len(group[0]) for group in codec.compress(x)["strings"]) / (512 * 512)
    assert estimated <= coded <= 1.03 * estimated, (coded, estimated)


def test_a_batch_codes_each_image_on_its_own(photo_crop):
    codec = tiny()
    batch = torch.cat([photo_crop, photo_crop.flip(-1)])
    coded = codec.compress(batch)
    assert [len(group) for group in coded["strings"]] == [2, 2]
    single = codec.compress(batch[1:])
    assert coded["strings"][0][1] == single["strings"][0][0] and coded["strings"][1][1] == single["strings"][1][0]
    decoded = codec.decompress(coded["strings"], coded["shape"])["x_hat"]
    assert torch.equal(decoded[1:], codec.decompress(single["strings"], single["shape"])["x_hat"])


def test_decoding_is_deterministic_twice_and_in_a_fresh_process(tmp_path, photo_crop):
    codec = load_codec("mlicpp-tiny", 2)  # seeded weights: the other process builds the same ones
    data = bitstream.encode(codec, photo_crop[0])
    (tmp_path / "image.moco").write_bytes(data)
    first, _ = bitstream.decode(codec, data)
    second, _ = bitstream.decode(load_codec("mlicpp-tiny", 2), data)
    assert torch.equal(first, second)
    script = textwrap.dedent(
        f"""
        import torch
        from mocodec import bitstream
        from mocodec.codecs import load_codec
        data = open({str(tmp_path / "image.moco")!r}, "rb").read()
        x_hat, _ = bitstream.decode(load_codec("mlicpp-tiny", 2), data)
        torch.save(x_hat, {str(tmp_path / "decoded.pt")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    assert torch.equal(torch.load(tmp_path / "decoded.pt"), first)


# --- training ------------------------------------------------------------------------------


def test_training_step_reaches_every_parameter_and_lowers_the_loss(photo_crop):
    torch.manual_seed(0)
    codec = create_codec("mlicpp-tiny").train()
    criterion = RateDistortionLoss(lmbda=0.0130)
    quantiles = {n for n, _ in codec.named_parameters() if n.endswith("quantiles")}
    net_params = [p for n, p in codec.named_parameters() if n not in quantiles]
    optimizer = torch.optim.Adam(net_params, lr=1e-3)
    aux_optimizer = torch.optim.Adam([p for n, p in codec.named_parameters() if n in quantiles], lr=1e-2)

    losses = []
    for step in range(8):
        optimizer.zero_grad()
        aux_optimizer.zero_grad()
        terms = criterion(codec(photo_crop), photo_crop)
        terms["loss"].backward()
        if step == 0:
            assert all(p.grad is not None for p in net_params)
            # ẑ is all zeros at initialisation (|z| < 0.5 rounds to the zero medians), so the
            # first h_s layer's weight has an exactly zero gradient; every other one must move.
            silent = [n for n, p in codec.named_parameters() if n not in quantiles and not p.grad.abs().sum() > 0]
            assert silent == ["h_s.0.weight"], silent
        torch.nn.utils.clip_grad_norm_(net_params, 1.0)
        optimizer.step()
        aux_loss = codec.aux_loss()
        aux_loss.backward()
        aux_optimizer.step()
        losses.append(terms["loss"].item())
        assert all(torch.isfinite(v).all() for v in terms.values()) and torch.isfinite(aux_loss)
    # The same crop eight times: an untrained codec improves fast (measured: 257 -> 93, not monotonically).
    assert losses[-1] < 0.8 * losses[0], losses


def test_fast_dev_run_with_codec_module_and_the_checkpoint_codes(tmp_path, photo_crop):
    """One Lightning step on the embedded photos, then the checkpoint loads as a codec and codes."""
    import pytorch_lightning as pl

    from mocodec.data.datamodule import ImageDataModule
    from mocodec.training import CodecModule

    torch.manual_seed(0)
    module = CodecModule(codec="mlicpp-tiny", quality=2, lmbda=0.0130)
    before = {k: v.clone() for k, v in module.codec.state_dict().items()}
    data = ImageDataModule(crop_size=64, val_crop_size=64, batch_size=2, val_batch_size=2, embedded_repeats=1)
    trainer = pl.Trainer(
        fast_dev_run=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=data)
    assert trainer.state.finished and trainer.global_step == 1
    assert not torch.equal(module.codec.state_dict()["slices.1.anchor_lrp.0.weight"], before["slices.1.anchor_lrp.0.weight"])

    trainer.save_checkpoint(tmp_path / "step1.ckpt")
    codec = load_codec("mlicpp-tiny", 2, checkpoint=tmp_path / "step1.ckpt")
    x_hat, _ = bitstream.decode(codec, bitstream.encode(codec, photo_crop[0]))
    with torch.no_grad():
        assert torch.equal(x_hat, codec(photo_crop)["x_hat"][0].clamp(0, 1))


# --- official checkpoints ---------------------------------------------------------------------

# mocodec prefix -> official prefix, written out independently of OFFICIAL_KEY_MAP.
_TO_OFFICIAL = [
    ("g_a.", "g_a.analysis_transform."),
    ("g_s.", "g_s.synthesis_transform."),
    ("h_a.", "h_a.reduction."),
    ("h_s.", "h_s.increase."),
    ("local_context.", "local_context.{i}."),
    ("channel_context.", "channel_context.{i}.fushion."),
    ("inter_context.", "global_inter_context.{i}."),
    ("intra_context.", "global_intra_context.{i}."),
    ("anchor_parameters.", "entropy_parameters_anchor.{i}.fusion."),
    ("non_anchor_parameters.", "entropy_parameters_nonanchor.{i}.fusion."),
    ("anchor_lrp.", "lrp_anchor.{i}.lrp_transform."),
    ("non_anchor_lrp.", "lrp_nonanchor.{i}.lrp_transform."),
]


def _official_layout(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the official MLICPlusPlus.state_dict() holds for the same weights, as saved by DDP."""
    out = {}
    for key, value in state_dict.items():
        i = None
        if key.startswith("slices."):
            _, i, key = key.split(".", 2)
        for ours, theirs in _TO_OFFICIAL:
            if key.startswith(ours):
                key = theirs.format(i=i) + key[len(ours) :]
                break
        out["module." + key] = value
    for i in range(TINY["num_slices"]):  # a persistent buffer there
        out[f"module.local_context.{i}.relative_position_index"] = torch.zeros(25, 25, dtype=torch.long)
    return out


def test_official_checkpoint_layout_loads_and_codes(tmp_path, photo_crop):
    source = tiny(quality=5)
    source.update(force=True)
    path = tmp_path / "mlicpp_mse_0250.pth.tar"
    checkpoint = {
        "epoch": 100,
        "state_dict": _official_layout(source.state_dict()),
        "loss": torch.tensor(0.5),
        "optimizer": {},
        "aux_optimizer": {},
    }
    assert "module.channel_context.1.fushion.0.weight" in checkpoint["state_dict"]
    torch.save(checkpoint, path)
    codec = load_codec("mlicpp", 5, checkpoint=path)  # sizes are read from the file
    assert (codec.N, codec.M, codec.num_slices) == (TINY["N"], TINY["M"], TINY["num_slices"])
    assert all(torch.equal(a, b) for a, b in zip(codec.state_dict().values(), source.state_dict().values()))
    x_hat, _ = bitstream.decode(codec, bitstream.encode(codec, photo_crop[0]))
    with torch.no_grad():
        assert torch.equal(x_hat, source(photo_crop)["x_hat"][0].clamp(0, 1))


def test_key_mapping_examples():
    t = torch.zeros(1)
    official = {
        "g_a.analysis_transform.0.conv1.weight": t,
        "h_s.increase.2.0.bias": t,
        "channel_context.3.fushion.4.weight": t,
        "entropy_parameters_nonanchor.0.fusion.6.bias": t,
        "lrp_anchor.9.lrp_transform.2.weight": t,
        "global_intra_context.1.mlp.2.weight": t,
        "local_context.0.relative_position_index": t,
        "entropy_bottleneck._quantized_cdf": t,
    }
    assert sorted(convert_official_state_dict(official)) == sorted(
        [
            "g_a.0.conv1.weight",
            "h_s.2.0.bias",
            "slices.3.channel_context.4.weight",
            "slices.0.non_anchor_parameters.6.bias",
            "slices.9.anchor_lrp.2.weight",
            "slices.1.intra_context.mlp.2.weight",
            "entropy_bottleneck._quantized_cdf",
        ]
    )
    ours = tiny().state_dict()
    assert list(convert_official_state_dict(ours)) == list(ours)  # mocodec files pass unchanged


def test_superseded_official_layout_is_refused(tmp_path):
    path = tmp_path / "old.pth.tar"
    torch.save({"state_dict": {"lrp_anchor.0.lrp_transform.6.weight": torch.zeros(1)}}, path)
    with pytest.raises(
        WeightsError, match=r"^checkpoint has the superseded 2023-09 MLIC\+\+ layout \(LatentResidualPredictionOld\); use the 2024-04"
    ):
        load_codec("mlicpp", 3, checkpoint=path)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "hyperprior.pth"
    torch.save(create_codec("bmshj2018-hyperprior", quality=1, N=8, M=12).state_dict(), path)
    with pytest.raises(WeightsError, match=r"does not match the mlicpp architecture \(missing layers\)"):
        load_codec("mlicpp", 3, checkpoint=path, **TINY)


def test_no_published_download_for_pretrained():
    with pytest.raises(ConfigError, match="^no published weights are known for mlicpp; pass --checkpoint PATH$"):
        load_codec("mlicpp", 3, pretrained=True)


def test_official_state_dict_is_the_inverse_of_the_conversion():
    """mocodec weights under the official keys (what the official code loads) convert back to themselves."""
    from mocodec.codecs.mlicpp import convert_official_state_dict, official_state_dict

    ours = create_codec("mlicpp-tiny").state_dict()
    theirs = official_state_dict(ours)
    assert theirs.keys() == {k.removeprefix("module.") for k in _official_layout(ours)} - {
        f"local_context.{i}.relative_position_index" for i in range(TINY["num_slices"])
    }
    back = convert_official_state_dict(theirs)
    assert back.keys() == {k for k in ours if not k.endswith(".relative_position_index")}
    assert all(torch.equal(back[k], ours[k]) for k in back)
