"""The container: header round trip, and every damaged-file case gives a BitstreamError."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from compressai.models import MeanScaleHyperprior
from hypothesis import given, settings
from hypothesis import strategies as st

from mocodec import bitstream
from mocodec.bitstream import Bitstream, pack, unpack
from mocodec.codecs import load_codec
from mocodec.data.io import ImageInfo
from mocodec.errors import BitstreamError, ForeignArithmeticError

DATA = Path(__file__).with_name("data")


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
    assert (back.arithmetic, back.check, back.version) == (None, None, 2)


@pytest.mark.parametrize(
    "arithmetic,writer,threads,check", [("exact", None, 0, 0xDEADBEEF), ("float", b"\x01\x02\x03\x04", 7, 0), (None, None, 0, None)]
)
def test_arithmetic_fields_round_trip(arithmetic, writer, threads, check):
    bs = Bitstream("mbt2018", 3, bytes(8), 5, 6, strings=[b"y", b"z"], arithmetic=arithmetic, writer=writer, threads=threads, check=check)
    back = unpack(pack(bs))
    assert (back.arithmetic, back.writer, back.threads, back.check, back.strings) == (arithmetic, writer, threads, check, [b"y", b"z"])


def test_overhead_is_small(codec, image, data):
    """Header + lengths + CRCs: 4 magic + 2 + name + 22 fixed + 1 arithmetic + 4 latent check + 4 per string + 4 CRC bytes."""
    strings = codec.compress(image.unsqueeze(0))["strings"]
    payload = sum(len(s[0]) for s in strings)
    assert len(data) - payload == 4 + 2 + len("bmshj2018-hyperprior") + 22 + 1 + 4 + 4 * len(strings) + 4


def test_float_files_record_their_writer_and_thread_count(codec, image):
    """5 bytes more than an exact file: the writer's arithmetic fingerprint and thread count."""
    floating = load_codec("bmshj2018-hyperprior", 1, N=8, M=12, arithmetic="float")
    bs = unpack(bitstream.encode(floating, image))
    assert bs.arithmetic == "float" and len(bs.writer) == 4 and bs.threads == torch.get_num_threads()
    assert len(pack(bs)) == len(pack(unpack(bitstream.encode(codec, image)))) + 5 + sum(map(len, bs.strings)) - sum(
        map(len, unpack(bitstream.encode(codec, image)).strings)
    )


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
    at = 6 + name_len + 2 + 8 + 8 + 3 + 1 + 4 + 1  # first string length: after the arithmetic, check and group count
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


# --- version 1 files, written before the arithmetic field (files in tests/codecs/data, made by mocodec at 4178009)


def test_version_1_files_still_decode_as_they_did():
    """A learned codec's version 1 file decodes with CompressAI's float coder (the strings of CompressAI's own decoder)."""
    codec = load_codec("mbt2018-mean-small", 1, pretrained=True)
    bs = unpack((DATA / "v1-mbt2018-mean-small-q1.moc").read_bytes())
    assert (bs.version, bs.arithmetic, bs.check, (bs.height, bs.width)) == (1, None, None, (64, 80))
    x_hat, _ = bitstream.decode(codec, bs)
    with torch.no_grad():
        reference = MeanScaleHyperprior.decompress(codec, [[s] for s in bs.strings], (1, 2))["x_hat"][..., :64, :80]
    assert torch.equal(x_hat, reference[0].clamp(0, 1))
    assert codec.arithmetic == "exact"  # decoding a float file does not change the codec's own arithmetic


def test_version_1_classic_file_still_decodes():
    x_hat, _ = bitstream.decode(load_codec("jpeg", 40), (DATA / "v1-jpeg-q40.moc").read_bytes())
    assert x_hat.shape == (3, 64, 80)


# --- files this machine's arithmetic does not reproduce


def test_a_float_file_of_another_machine_is_refused_in_one_line(image):
    codec = load_codec("bmshj2018-hyperprior", 1, N=8, M=12, arithmetic="float")
    bs = unpack(bitstream.encode(codec, image))
    bs.writer = bytes(4)  # what a file of another CPU kind, kernel set, torch or GPU records
    with pytest.raises(ForeignArithmeticError) as caught:
        bitstream.decode(codec, pack(bs))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("this file's entropy parameters were computed in float arithmetic")
    assert "re-encode it with --arithmetic exact" in message and "ATen" in message


@pytest.mark.parametrize("arithmetic", ["exact", "float"])
def test_a_decoder_with_other_entropy_parameters_is_refused_not_garbage(image, arithmetic):
    """A decoder whose hyper-synthesis differs from the encoder's (one scale bias moved) fails the latent check."""
    writer = load_codec("bmshj2018-hyperprior", 1, N=8, M=12, arithmetic=arithmetic)
    data = bitstream.encode(writer, image * 0.2 + 0.4)
    reader = load_codec("bmshj2018-hyperprior", 1, N=8, M=12)
    with torch.no_grad():
        reader.h_s[-2].bias[0] += 0.25
    with pytest.raises(ForeignArithmeticError, match=r"^the decoded latents fail the file's check \(CRC of the quantized latents"):
        bitstream.decode(reader, data)


def test_a_file_claiming_an_arithmetic_its_codec_lacks_is_corrupted(image):
    bs = unpack(bitstream.encode(load_codec("mlicpp-tiny", 1), image))
    assert bs.arithmetic == "float"
    bs.arithmetic, bs.writer = "exact", None
    with pytest.raises(BitstreamError, match="claims exact arithmetic, which mlicpp-tiny does not have; the file is corrupted"):
        bitstream.decode(load_codec("mlicpp-tiny", 1), pack(bs))


def test_unknown_arithmetic_code_is_corrupted(data):
    name_len = data[5]
    at = 6 + name_len + 2 + 8 + 8 + 3
    with pytest.raises(BitstreamError, match=r"header is corrupted \(unknown arithmetic\)"):
        unpack(_recrc(data[:at] + bytes([7]) + data[at + 1 : -4]))
