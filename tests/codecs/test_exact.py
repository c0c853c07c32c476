"""Integer-exact entropy parameters: exact integer arithmetic in float64, and tables that are the same everywhere."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from compressai.entropy_models import GaussianConditional
from compressai.layers import MaskedConv2d
from compressai.models.utils import conv, deconv
from torch import nn

from mocodec import bitstream
from mocodec.codecs import load_codec
from mocodec.codecs.exact import (
    EXACT_BOUND,
    FORMAT,
    FixedPoint,
    IntegerNetwork,
    NoExactForm,
    bottleneck_tables,
    dyadic_scale_table,
    gaussian_tables,
    has_exact_form,
    scale_indexes,
)
from mocodec.codecs.rans import RansTables
from mocodec.errors import ConfigError
from mocodec.utils.seeding import seeded


def int64_conv(a: torch.Tensor, layer) -> torch.Tensor:
    """The layer's accumulator (weights times activations plus bias) in int64 arithmetic: no float anywhere."""
    conv, weight, bias = layer.conv, layer.weight.long(), layer.bias.long()
    a = a.long()
    k = conv.kernel_size[0]
    if layer.transposed:
        # A transposed convolution is a convolution of the zero-upsampled, padded input with the flipped kernel.
        s, p, op = conv.stride[0], conv.padding[0], conv.output_padding[0]
        up = torch.zeros(a.size(0), a.size(1), (a.size(2) - 1) * s + 1, (a.size(3) - 1) * s + 1, dtype=torch.long)
        up[:, :, ::s, ::s] = a
        a = F.pad(up, (k - 1 - p, k - 1 - p + op, k - 1 - p, k - 1 - p + op))
        weight, stride = weight.flip(2, 3).transpose(0, 1), 1
    else:
        p, stride = conv.padding[0], conv.stride[0]
        a = F.pad(a, (p, p, p, p))
    cols = F.unfold(a.double(), k, stride=stride).long()  # unfold only moves these integers (all below 2^53)
    out = weight.flatten(1) @ cols + bias.view(-1, 1)
    return out.view(a.size(0), -1, (a.size(2) - k) // stride + 1, (a.size(3) - k) // stride + 1)


def rescaled(acc: torch.Tensor, layer) -> torch.Tensor:
    """floor(acc / 2^shift + 1/2) per output channel, in integers, saturated to the format's limit."""
    shift = (-torch.log2(layer.rescale)).round().long().view(1, -1, 1, 1)
    assert (shift > 0).all()
    out = (acc + (1 << (shift - 1))).div(1 << shift, rounding_mode="floor")
    return out.clamp(-int(FORMAT.limit), int(FORMAT.limit))


@pytest.mark.parametrize(
    "make",
    [
        lambda: conv(12, 8, kernel_size=5, stride=2),
        lambda: conv(8, 16, kernel_size=3, stride=1),
        lambda: deconv(8, 12, kernel_size=5, stride=2),
        lambda: MaskedConv2d(6, 12, kernel_size=5, padding=2),
        lambda: nn.Conv2d(20, 10, 1),
    ],
    ids=["conv5s2", "conv3", "deconv5s2", "masked5", "conv1x1"],
)
def test_integer_convolution_is_the_exact_integer_dot_product(make):
    """Equal to an int64 computation, with activations at the format's limit included (the largest accumulators)."""
    with seeded(0):
        module = make()
        with torch.no_grad():
            module.weight.mul_(torch.logspace(-3, 1, module.weight.numel()).view_as(module.weight))  # mixed magnitudes
    layer = IntegerNetwork(module).layers[0]
    g = torch.Generator().manual_seed(1)
    a = torch.randint(-int(FORMAT.limit), int(FORMAT.limit) + 1, (2, module.in_channels, 9, 11), generator=g).double()
    a[0, :, :3] = FORMAT.limit  # saturated inputs
    acc = int64_conv(a, layer)
    assert acc.abs().max() < EXACT_BOUND
    assert torch.equal(layer(a).long(), rescaled(acc, layer))
    if isinstance(module, MaskedConv2d):
        assert not layer.weight[:, :, 2, 2:].any() and not layer.weight[:, :, 3:].any()  # the mask is applied


def test_a_layer_that_could_leave_exact_integers_loses_weight_bits():
    """Wide fan-in at the format's limit: the accumulator bound is kept below 2^53 by smaller weight scales."""
    module = nn.Conv2d(8192, 2, 3, padding=1)  # 73,728 weights of 0.5 at 12 bits and inputs at 2^27: 2^53.2
    with torch.no_grad():
        module.weight.fill_(0.5)
        module.weight[1].zero_()
        module.weight[1, :16].fill_(0.001)  # a small fan-in: far from the bound
        module.bias.zero_()
    layer = IntegerNetwork(module).layers[0]
    reach = layer.weight.abs().sum(dim=(1, 2, 3)) * FORMAT.limit
    assert (reach < EXACT_BOUND).all()
    assert layer.weight[0].abs().max() == 2 ** (FORMAT.weight_bits - 3)  # channel 0 gave one bit up (0.5 -> 2^10 -> 2^9) ...
    assert layer.weight[1].abs().max() == round(0.001 * 2 ** (FORMAT.weight_bits - 1 - math.frexp(0.001)[1]))  # ... channel 1 did not
    a = torch.full((1, 8192, 3, 3), FORMAT.limit, dtype=torch.float64)
    assert torch.equal(layer(a)[0, :, 1, 1], layer(a.flip(1))[0, :, 1, 1])  # any order, same integers


def test_leaky_relu_is_an_integer_map():
    net = IntegerNetwork(nn.Sequential(nn.LeakyReLU(0.01), nn.ReLU()))
    a = torch.tensor([-(2.0**26), -1001.0, -51.0, -50.0, 0.0, 7.0], dtype=torch.float64)
    leaky = net.layers[0](a)
    # floor(a * 167772 / 2^24 + 1/2): 167772 / 2^24 is 0.01 rounded to 24 bits
    assert leaky.tolist() == [-671088.0, -10.0, -1.0, 0.0, 0.0, 7.0]
    assert net.layers[1](leaky).tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 7.0]


def test_networks_without_an_exact_form_are_named():
    assert has_exact_form(nn.Sequential(nn.Conv2d(3, 3, 1), nn.LeakyReLU()))
    assert not has_exact_form(nn.Sequential(nn.Conv2d(3, 3, 1), nn.GELU()))
    with pytest.raises(NoExactForm, match="GELU has no integer-exact form in mocodec"):
        IntegerNetwork(nn.Sequential(nn.GELU()))


def test_dyadic_scale_table_is_far_from_every_rounding_boundary():
    """Any libm's exp rounds to the same multiples of 2^-16: each value is >= 1e-4 grid steps from a boundary."""
    low, high = math.log(0.11), math.log(256)
    for i, value in enumerate(dyadic_scale_table()):
        exact = math.exp(low + i * (high - low) / 63) * 2**16
        assert abs(exact - math.floor(exact) - 0.5) > 1e-4, i
        assert value * 2**16 == round(exact)
    assert len(dyadic_scale_table()) == 64 and dyadic_scale_table()[0] == round(0.11 * 2**16) / 2**16


def test_scale_indexes_follow_compressai_s_rule():
    """Row = the number of thresholds below the scale (at a threshold: the row below), from fixed-point scales."""
    table = torch.tensor(dyadic_scale_table(), dtype=torch.float64)
    fixed = torch.cat([table * FORMAT.one, table * FORMAT.one + 1, torch.tensor([0.0, 1.0, 1e9])])
    gc = GaussianConditional(dyadic_scale_table()).double()
    expected = gc.build_indexes(FORMAT.to_real(fixed))
    assert torch.equal(scale_indexes(fixed), expected)


def test_gaussian_tables_code_like_compressai_s():
    """The float64 tables round-trip symbols, and differ from CompressAI's float32 ones by float32's error in the tails."""
    ours = gaussian_tables()
    gc = GaussianConditional(dyadic_scale_table())
    gc.update()
    theirs = RansTables.of(gc)
    assert ours.cdf_lengths == theirs.cdf_lengths and ours.offsets == theirs.offsets
    differences = [max(abs(a - b) for a, b in zip(x, y)) for x, y in zip(ours.cdfs, theirs.cdfs)]
    assert max(differences) <= 16, differences  # of 2^16: at most 0.025 % of probability mass
    g = torch.Generator().manual_seed(0)
    indexes = torch.randint(0, 64, (500,), generator=g, dtype=torch.int32)
    symbols = torch.randint(-30, 30, (500,), generator=g, dtype=torch.int32)
    decoded = ours.decode(ours.decoder(ours.encode(symbols, indexes) + bytes(4096)), indexes)
    assert torch.equal(decoded, symbols)


def test_bottleneck_tables_are_derived_in_float64():
    codec = load_codec("bmshj2018-hyperprior", 1, N=8, M=12)
    tables = bottleneck_tables(codec.entropy_bottleneck)
    codec.update(force=True)
    float32 = RansTables.of(codec.entropy_bottleneck)
    assert tables.offsets == float32.offsets and len(tables.cdfs) == 8
    assert codec.entropy_bottleneck.quantiles.dtype == torch.float32  # the codec itself is untouched


def test_fixed_point_format_checks():
    fmt = FixedPoint(weight_bits=8, fraction_bits=4, activation_bits=10)
    assert fmt.one == 16.0 and fmt.limit == 511.0
    assert torch.equal(fmt.to_fixed(torch.tensor([0.03, -0.03, 1000.0])), torch.tensor([0.0, -0.0, 511.0], dtype=torch.float64))


def test_exact_files_of_the_shipped_codec_do_not_depend_on_the_thread_count(photo_crop):
    """In-process check (the fresh-process matrix is in test_portability.py): 1 and 2 threads, the same file."""
    codec = load_codec("mbt2018-mean-small", 4, pretrained=True)
    threads = torch.get_num_threads()
    try:
        files = []
        for n in (1, 2):
            torch.set_num_threads(n)
            files.append(bitstream.encode(codec, photo_crop[0]))
    finally:
        torch.set_num_threads(threads)
    assert files[0] == files[1]


def test_float_arithmetic_is_refused_where_a_codec_has_only_one():
    with pytest.raises(ConfigError, match="mlicpp-tiny cannot code with exact arithmetic; it has float"):
        load_codec("mlicpp-tiny", 1, arithmetic="exact")
    with pytest.raises(ConfigError, match="jpeg cannot code with float arithmetic; it has none"):
        load_codec("jpeg", 50, arithmetic="float")
    with pytest.raises(ConfigError, match="unknown arithmetic 'fixed'; use one of exact, float"):
        load_codec("mbt2018", 1, arithmetic="fixed")


def exact_form_digest(codec) -> str:
    """SHA-256 (16 hex digits) of everything the exact arithmetic derives: integer h_s, fixed medians, both tables."""
    import hashlib
    import json

    from mocodec.codecs.entropy_parameters import ExactArithmetic

    arithmetic = ExactArithmetic(codec)
    digest = hashlib.sha256()
    for layer in arithmetic.network(codec.h_s).layers:
        for tensor in (getattr(layer, "weight", None), getattr(layer, "bias", None), getattr(layer, "rescale", None)):
            if tensor is not None:
                digest.update(tensor.cpu().double().numpy().tobytes())
    digest.update(arithmetic.bottleneck_medians.cpu().numpy().tobytes())
    for tables in (arithmetic.bottleneck_tables, arithmetic.gaussian_tables):
        digest.update(json.dumps([tables.cdfs, tables.cdf_lengths, tables.offsets]).encode())
    return digest.hexdigest()[:16]


# Recorded on an AMD EPYC (AVX2) and checked there under ATEN_CPU_CAPABILITY=default, 1 thread and
# ONEDNN_MAX_CPU_ISA=SSE41: the exact form is a function of the weights alone, so these hold on every machine.
SHIPPED_EXACT_FORM = {1: "766a78741616f88d", 2: "656be687a30a00ac", 3: "76f074efbcf83fa1", 4: "7ab0e7c2ad469806"}


@pytest.mark.parametrize("quality", sorted(SHIPPED_EXACT_FORM))
def test_the_shipped_weights_exact_form_is_the_same_on_every_machine(quality):
    assert exact_form_digest(load_codec("mbt2018-mean-small", quality, pretrained=True)) == SHIPPED_EXACT_FORM[quality]


@pytest.mark.parametrize("name", ["bmshj2018-hyperprior", "mbt2018-mean", "mbt2018"])
def test_compressai_s_largest_published_sizes_keep_every_weight_bit(name):
    """At quality 8 (N=192, M=320: the widest fan-ins CompressAI publishes) no layer has to give weight bits up."""
    from mocodec.codecs import create_codec

    codec = create_codec(name, quality=8)
    networks = [codec.h_s] + ([codec.context_prediction, codec.entropy_parameters] if name == "mbt2018" else [])
    for network in networks:
        for layer in IntegerNetwork(network).layers:
            if hasattr(layer, "weight"):
                peaks = (
                    layer.weight.abs().flatten(1).amax(1) if not layer.transposed else layer.weight.abs().transpose(0, 1).flatten(1).amax(1)
                )
                assert (peaks > 2 ** (FORMAT.weight_bits - 2)).all()  # every channel's largest weight kept its top bit


def test_the_exact_form_is_kept_until_the_weights_change_in_place():
    """Converted once per weights; an in-place change (an optimiser step, load_state_dict) converts again."""
    from mocodec.codecs.entropy_parameters import ExactArithmetic

    codec = load_codec("mbt2018-mean", 1, N=8, M=12)
    first = ExactArithmetic(codec).network(codec.h_s)
    assert ExactArithmetic(codec).network(codec.h_s) is first
    tables = ExactArithmetic(codec).bottleneck_tables
    with torch.no_grad():
        codec.h_s[0].weight.mul_(2)
    second = ExactArithmetic(codec).network(codec.h_s)
    assert second is not first and torch.equal(second.layers[0].weight, IntegerNetwork(codec.h_s).layers[0].weight)
    assert ExactArithmetic(codec).bottleneck_tables is tables  # the bottleneck did not change
    codec.load_state_dict(load_codec("mbt2018-mean", 1, N=8, M=12).state_dict())
    assert ExactArithmetic(codec).bottleneck_tables is not tables
