"""The container: header round trip, and every damaged-file case gives a BitstreamError."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mocodec import bitstream
from mocodec.bitstream import Bitstream, pack, unpack
from mocodec.codecs import load_codec
from mocodec.data.io import ImageInfo
from mocodec.errors import BitstreamError


@pytest.fixture(scope="module")
def codec():
    return load_codec("bmshj2018-hyperprior", 1, N=8, M=12)


@pytest.fixture(scope="module")
def image():
    return torch.rand(3, 37, 53, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def data(codec, image):
    return bitstream.encode(codec, image)


def test_header_round_trip():
    bs = Bitstream("jpeg", 75, bytes(range(8)), 300, 451, 1, 16, [b"abc", b""], np.arange(300 * 451, dtype=np.uint8).reshape(300, 451) % 7)
    back = unpack(pack(bs))
    assert (back.codec, back.quality, back.weights_id, back.height, back.width, back.channels, back.bitdepth) == (
        "jpeg",
        75,
        bytes(range(8)),
        300,
        451,
        1,
        16,
    )
    assert back.strings == [b"abc", b""] and np.array_equal(back.alpha, bs.alpha)


def test_overhead_is_small(codec, image, data):
    """Header + lengths + CRC: 4 magic + 2 + name + 22 fixed + 4 per string + 4 CRC bytes."""
    strings = codec.compress(image.unsqueeze(0))["strings"]
    payload = sum(len(s[0]) for s in strings)
    assert len(data) - payload == 4 + 2 + len("bmshj2018-hyperprior") + 22 + 4 * len(strings) + 4


def test_decode_twice_is_identical(codec, data):
    a, _ = bitstream.decode(codec, data)
    b, _ = bitstream.decode(codec, data)
    assert torch.equal(a, b)


def test_every_truncation_is_a_clear_error(data):
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack(data[:n])


def test_wrong_magic(data):
    with pytest.raises(BitstreamError, match=r"not a mocodec bitstream \(bad magic bytes\)"):
        unpack(b"JUNK" + data[4:])


def _recrc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def test_other_format_version(data):
    with pytest.raises(BitstreamError, match="bitstream format version 9 is not supported"):
        unpack(_recrc(data[:4] + bytes([9]) + data[5:-4]))


def test_huge_dimensions_are_refused_before_allocation(data):
    name_len = data[5]
    at = 6 + name_len + 2 + 8  # height, width follow quality and weights id
    forged = data[:at] + struct.pack(">II", 10**9, 10**9) + data[at + 8 : -4]
    with pytest.raises(BitstreamError, match=r"claims a 1000000000x1000000000 image"):
        unpack(_recrc(forged))


def test_length_past_end_of_file(data):
    name_len = data[5]
    at = 6 + name_len + 2 + 8 + 8 + 4  # first string length
    forged = data[:at] + struct.pack(">I", 2**31) + data[at + 4 : -4]
    with pytest.raises(BitstreamError, match="file is truncated: coded string needs 2147483648 bytes"):
        unpack(_recrc(forged))


def test_trailing_bytes(data):
    with pytest.raises(BitstreamError, match="3 unexpected trailing bytes"):
        unpack(_recrc(data[:-4] + b"xyz"))


def test_decoding_with_another_codec_is_refused(data):
    with pytest.raises(
        BitstreamError, match="bitstream was written by codec bmshj2018-hyperprior, not jpeg; decode with --codec bmshj2018-hyperprior"
    ):
        bitstream.decode(load_codec("jpeg", 50), data)


def test_decoding_with_other_weights_is_refused(codec, data):
    other = load_codec("bmshj2018-hyperprior", 1, N=8, M=12)
    other.weights_id = b"\x01" * 8
    with pytest.raises(BitstreamError, match="bitstream needs weights 0000000000000000 but the codec has 0101010101010101"):
        bitstream.decode(other, data)


def test_alpha_and_gray_16bit_info_survive(codec, image):
    alpha = (np.arange(37 * 53) % 256).astype(np.uint8).reshape(37, 53)
    data = bitstream.encode(codec, image, ImageInfo(channels=1, bitdepth=16, alpha=alpha))
    _, info = bitstream.decode(codec, data)
    assert info.channels == 1 and info.bitdepth == 16 and np.array_equal(info.alpha, alpha)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_mutations_never_escape_as_other_errors(data_strategy):
    """Random byte flips, insertions and cuts of a real file: decoded, or a BitstreamError."""
    codec = load_codec("bmshj2018-hyperprior", 1, N=8, M=12)
    original = bitstream.encode(codec, torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(1)))
    mutated = bytearray(original)
    for _ in range(data_strategy.draw(st.integers(1, 4))):
        op = data_strategy.draw(st.sampled_from(["flip", "insert", "cut"]))
        pos = data_strategy.draw(st.integers(0, len(mutated) - 1))
        if op == "flip":
            mutated[pos] ^= data_strategy.draw(st.integers(1, 255))
        elif op == "insert":
            mutated.insert(pos, data_strategy.draw(st.integers(0, 255)))
        else:
            del mutated[pos:]
            if not mutated:
                break
    try:
        x_hat, _ = bitstream.decode(codec, bytes(mutated))
    except BitstreamError:
        return
    assert bytes(mutated) == original or torch.isfinite(x_hat).all()
