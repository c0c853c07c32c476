"""Fast coders, same files: MLIC++ and mbt2018 write the bytes and decode the images of the straightforward coders.

Three kinds of reference:

* golden digests of files and decoded images, recorded with the straightforward coders (MLIC++'s
  window attention around every position and CompressAI's full CDF tables; CompressAI's own serial
  loop for mbt2018) on the project's machine (Intel x86-64 with AVX-512, torch 2.14.1, CompressAI 1.2.8),
  at one thread: the float rounding of a convolution can depend on the CPU and on the thread count
  (the 1x1 ones pick their algorithm by it), so on another machine a digest can differ without a
  bug here, while the live references below still hold;
* live references that run anywhere: CompressAI's own mbt2018 coder, the attention computed around
  every window, CompressAI's ``build_indexes`` and its coder fed the full tables;
* the decoder against the encoder: the same latent, and files that decode in a fresh process.

The codecs are seeded and scaled to exercise the coder (:func:`informative`): at random
initialisation nearly every symbol is 0 and coded with the same CDF row.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import GaussianConditional
from compressai.models import JointAutoregressiveHierarchicalPriors
from compressai.models.base import get_scale_table
from torch import nn

from mocodec import bitstream
from mocodec.codecs import create_codec
from mocodec.codecs.base import pad_to_multiple
from mocodec.codecs.layers import ANCHOR, NON_ANCHOR, CheckerboardWindowAttention, keep
from mocodec.codecs.mlicpp import RansDecoderQuantizer, RansEncoderQuantizer
from mocodec.codecs.rans import RansTables, scale_indexes
from mocodec.utils.seeding import seeded

TINY_MBT2018 = {"N": 8, "M": 12}

# (codec, size kwargs, crop height x width): first 16 hex digits of the SHA-256 of the y and z strings
# (concatenated) and of the decoded image in 8 bits. Recorded with the straightforward coders.
GOLDEN = [
    ("mlicpp-tiny", {}, (96, 128), "728614d86f0681cc", "7309d2b005d40d1f"),
    ("mlicpp-tiny", {}, (37, 50), "6919378f4add63c1", "fe44209572b98de0"),
    ("mlicpp", {}, (128, 128), "994b523bfecec88f", "0b82b46369c58573"),
    ("mbt2018", TINY_MBT2018, (96, 128), "24e306f0c62fd276", "e7c00c971bd4443c"),
    ("mbt2018", TINY_MBT2018, (37, 50), "64859f226b371f55", "df34e661d41ac191"),
    ("mbt2018", {}, (64, 64), "f3850d8b603c9e80", "8d13d7a2b79dc53a"),
]


def informative(name: str, **kwargs: int) -> nn.Module:
    """Seeded ``name`` at quality 3 whose latents exercise the coder, coding in float arithmetic (CompressAI's coder).

    ``y`` is scaled up 30x (many distinct symbols, bypass-coded ones among them) and the last
    layer of every network predicting scales 20x (many CDF rows); tables rebuilt.
    """
    with seeded(0):
        codec = create_codec(name, quality=3, **kwargs).eval()
    codec.set_arithmetic("float")
    if name.startswith("mlicpp"):
        scale_nets = [net for s in codec.slices for net in (s.anchor_parameters, s.non_anchor_parameters)]
    else:
        scale_nets = [codec.entropy_parameters]
    with torch.no_grad():
        codec.g_a[-1].weight.mul_(30)
        for net in scale_nets:
            net[-1].weight.mul_(20)
    codec.update(force=True)
    return codec


def crop(astronaut: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    h, w = size
    return torch.from_numpy(np.ascontiguousarray(astronaut[40 : 40 + h, 160 : 160 + w])).permute(2, 0, 1).float().div(255).unsqueeze(0)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def eight_bit(x_hat: torch.Tensor) -> bytes:
    """The decoded image as a PNG holds it."""
    return x_hat.clamp(0, 1).mul(255).round().to(torch.uint8).numpy().tobytes()


def on_recording_cpu() -> bool:
    """Whether this CPU is of the kind the golden digests were recorded on (Intel, AVX-512): the decoded images of
    a convolution's float rounding match there (seen to differ in a few pixels of full MLIC++ on an AMD EPYC)."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    return "GenuineIntel" in text and "avx512f" in text


@pytest.fixture
def one_thread():
    """Golden digests were recorded at one thread (see the module docstring)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- golden digests ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,kwargs,size,file_digest,image_digest", GOLDEN)
def test_files_and_decoded_images_are_those_of_the_straightforward_coders(
    name, kwargs, size, file_digest, image_digest, astronaut, one_thread
):
    codec = informative(name, **kwargs)
    with torch.no_grad():
        coded = codec.compress(crop(astronaut, size))
        decoded = codec.decompress(coded["strings"], coded["shape"])["x_hat"]
    (y_string,), (z_string,) = coded["strings"]
    assert digest(y_string + z_string) == file_digest
    if not on_recording_cpu():
        pytest.skip("decoded-image digests were recorded on an Intel AVX-512 CPU; convolutions on this one may round differently")
    assert digest(eight_bit(decoded)) == image_digest


# --- live references --------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,size", [(TINY_MBT2018, (96, 128)), (TINY_MBT2018, (37, 50)), (TINY_MBT2018, (1, 1)), ({}, (64, 64))])
def test_mbt2018_codes_compressai_s_bytes_and_floats(kwargs, size, astronaut):
    """CompressAI's own coder, same weights and padded input: the same strings, the same decoded floats."""
    codec = informative("mbt2018", **kwargs)
    reference = JointAutoregressiveHierarchicalPriors(codec.N, codec.M).eval()
    reference.load_state_dict(codec.state_dict())
    x = crop(astronaut, size)
    with torch.no_grad():
        ours = codec.compress(x)
        theirs = reference.compress(pad_to_multiple(x, 64))
        assert ours["strings"] == theirs["strings"]
        decoded = codec.decompress(ours["strings"], ours["shape"])["x_hat"]
        expected = reference.decompress(theirs["strings"], theirs["shape"])["x_hat"][..., : size[0], : size[1]]
        assert torch.equal(decoded, expected)
        # Eval forward runs the same serial pass, so it reconstructs the decoder's image. Up to
        # rounding: on an AVX2-only CPU (AMD Zen 2) the two g_s calls differed by 1e-8 on a 1x1 image.
        assert torch.allclose(codec(x)["x_hat"].clamp(0, 1), decoded, rtol=0, atol=1e-6)


def every_window_attention(module: CheckerboardWindowAttention, anchors: torch.Tensor) -> torch.Tensor:
    """The local context as computed before, around every position (anchors included), written out independently."""
    b, c, h, w = anchors.shape
    size, area = module.window**2, h * w
    tokens = module.norm1(anchors.flatten(2).transpose(1, 2))
    qkv = module.qkv_proj(tokens).transpose(1, 2).reshape(b, 3 * c, h, w)
    windows = F.unfold(qkv, module.window, padding=module.window // 2).view(b, 3, module.head_dim, module.heads, size, area)
    q, k, v = windows.permute(1, 0, 5, 3, 4, 2).unbind(0)
    anchor_windows = F.unfold(ANCHOR.mask(h, w).float()[None, None], module.window, padding=module.window // 2)[0].T
    allowed = anchor_windows[:, :, None] * anchor_windows[:, None, :]
    mask = torch.where(allowed > 0, 0.0, -100.0)
    bias = module.relative_position_table[module.relative_position_index].permute(2, 0, 1)
    logits = (q * module.scale) @ k.transpose(-1, -2) + bias + mask[:, None]
    attended = (logits.softmax(dim=-1) @ v).permute(0, 1, 2, 4, 3).reshape(b * area, c, module.window, module.window)
    context = module.proj(module.fusion(attended).view(b, area, 2 * c))
    context = context + module.mlp(module.norm2(context))
    return context.transpose(1, 2).reshape(b, 2 * c, h, w)


@pytest.mark.parametrize("size", [(1, 1), (1, 2), (2, 1), (2, 2), (3, 5), (8, 8), (7, 12), (16, 16)])
def test_window_attention_around_non_anchors_equals_the_every_window_computation(size):
    """Bit for bit at the non-anchors (all that is used of it), for one and two images."""
    with seeded(0):
        module = CheckerboardWindowAttention(8).eval()
        with torch.no_grad():
            for p in module.parameters():
                p.add_(0.1 * torch.randn_like(p))  # LayerNorm weights 1 and biases 0 would hide layout mistakes
        anchors = keep(3 * torch.randn(2, 8, *size), ANCHOR)
    with torch.no_grad():
        for batch in (anchors[:1], anchors):
            out = module(batch)
            assert torch.equal(out, keep(every_window_attention(module, batch), NON_ANCHOR))
            assert not keep(out, ANCHOR).any()


@pytest.fixture(scope="module")
def gaussian_conditional() -> GaussianConditional:
    model = GaussianConditional(None)
    model.update_scale_table(get_scale_table(), force=True)
    return model


def test_rans_table_indexes_are_build_indexes(gaussian_conditional):
    table = gaussian_conditional.scale_table
    scales = torch.cat(
        [
            table,
            torch.nextafter(table, torch.tensor(0.0)),
            torch.nextafter(table, torch.tensor(1e9)),  # at and beside every threshold
            torch.exp(torch.empty(1000).uniform_(-5, 7, generator=torch.Generator().manual_seed(0))),
            torch.tensor([0.0, -1.0, 0.05, 1e6, float("inf"), float("nan")]),
        ]
    ).view(2, -1)
    assert torch.equal(scale_indexes(gaussian_conditional, scales), gaussian_conditional.build_indexes(scales))


def test_rans_tables_code_the_bytes_of_the_full_tables(gaussian_conditional):
    """Trimmed rows, and decoding calls given only the rows they use: the bytes and symbols of the full padded tables."""
    g = torch.Generator().manual_seed(0)
    indexes = torch.randint(0, len(gaussian_conditional.scale_table), (3000,), generator=g, dtype=torch.int32)
    symbols = torch.randint(-40, 40, (3000,), generator=g, dtype=torch.int32) * (indexes // 8 + 1)  # out-of-table ones too
    full = (gaussian_conditional.quantized_cdf.tolist(), gaussian_conditional.cdf_length.tolist(), gaussian_conditional.offset.tolist())
    encoder = BufferedRansEncoder()
    encoder.encode_with_indexes(symbols.tolist(), indexes.tolist(), *full)
    expected = encoder.flush()
    tables = RansTables.of(gaussian_conditional)
    assert tables.encode(symbols, indexes) == expected
    assert RansDecoder().decode_with_indexes(expected, indexes.tolist(), *full) == symbols.tolist()
    decoder = tables.decoder(expected)
    decoded = [tables.decode(decoder, chunk.view(3, -1)) for chunk in indexes.split(300)]  # one call per "position"
    assert torch.equal(torch.cat([d.flatten() for d in decoded]), symbols)


# --- decoder against encoder -----------------------------------------------------------------


def test_mlicpp_decoder_reconstructs_the_encoder_s_latent(astronaut):
    codec = informative("mlicpp-tiny")
    x = pad_to_multiple(crop(astronaut, (70, 129)), 64)
    with torch.no_grad():
        y = codec.g_a(x)
        z_hat = codec.entropy_bottleneck.decompress(codec.entropy_bottleneck.compress(codec.h_a(y)), (x.shape[-2] // 64, x.shape[-1] // 64))
        hyper = codec.h_s(z_hat)
        encoder = RansEncoderQuantizer(codec.gaussian_conditional)
        encoded, scales, means = codec.code_slices(y, hyper, encoder)
        decoded, decoded_scales, decoded_means = codec.code_slices(
            None, hyper, RansDecoderQuantizer(codec.gaussian_conditional, encoder.flush())
        )
    assert torch.equal(decoded, encoded) and torch.equal(decoded_scales, scales) and torch.equal(decoded_means, means)
    # The latent exercises the coder: many distinct symbols, coded with many CDF rows.
    assert torch.cat(encoder.symbols).unique().numel() > 15 and torch.cat(encoder.indexes).unique().numel() > 15


def test_mbt2018_file_decodes_identically_in_a_fresh_process(tmp_path, astronaut):
    codec = informative("mbt2018", **TINY_MBT2018)
    data = bitstream.encode(codec, crop(astronaut, (96, 128))[0])
    (tmp_path / "image.moco").write_bytes(data)
    x_hat, _ = bitstream.decode(codec, data)
    with torch.no_grad():
        assert torch.equal(x_hat, codec(crop(astronaut, (96, 128)))["x_hat"][0].clamp(0, 1))
    script = textwrap.dedent(
        f"""
        import sys, torch
        sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
        from test_coding_exactness import TINY_MBT2018, informative
        from mocodec import bitstream
        torch.set_num_threads({torch.get_num_threads()})  # 1x1 convolutions pick their algorithm by thread count
        data = open({str(tmp_path / "image.moco")!r}, "rb").read()
        x_hat, _ = bitstream.decode(informative("mbt2018", **TINY_MBT2018), data)
        torch.save(x_hat, {str(tmp_path / "decoded.pt")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    assert torch.equal(torch.load(tmp_path / "decoded.pt"), x_hat)


def test_a_codec_switched_between_arithmetics_codes_with_each_one_s_own_tables(astronaut):
    """Both arithmetics keep derived tables on the codec: switching must not hand one the other's."""
    x = crop(astronaut, (48, 64))
    switched = informative("mbt2018", **TINY_MBT2018)
    switched.set_arithmetic("exact")
    switched.compress(x)
    switched.set_arithmetic("float")
    assert switched.compress(x)["strings"] == informative("mbt2018", **TINY_MBT2018).compress(x)["strings"]
    exact = informative("mbt2018", **TINY_MBT2018)
    exact.set_arithmetic("exact")
    assert switched.compress(x)["strings"] != exact.compress(x)["strings"]  # the test tells the two apart
    switched.set_arithmetic("exact")
    assert switched.compress(x)["strings"] == exact.compress(x)["strings"]
