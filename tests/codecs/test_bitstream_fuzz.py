"""Fuzzing the container and every codec's decoder with mutations of real files.

Two kinds of damage: random mutations (caught by the CRC), and mutations of the
*payload* with the CRC recomputed, as a hostile file would carry, which reach the
entropy decoders themselves. Either the file decodes to a finite image of the
header's size, or a BitstreamError is raised: no other exception, no crash, no hang.

The default suite runs a fixed number of examples per codec; the long run is
``MOCODEC_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest tests/codecs/test_bitstream_fuzz.py``.
"""

from __future__ import annotations

import os
import struct
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mocodec import bitstream
from mocodec.codecs import CODECS, create_codec, is_classic, list_codecs
from mocodec.errors import BitstreamError

EXAMPLES = int(os.environ.get("MOCODEC_FUZZ_EXAMPLES", "25"))
_FILES: dict[str, tuple] = {}


def _codec_and_file(name: str):
    if name not in _FILES:
        torch.manual_seed(0)
        kwargs = {"quality": 50} if is_classic(name) else {"quality": 1, **CODECS.meta(name).get("test_kwargs", {})}
        codec = create_codec(name, **kwargs).eval()
        x = torch.rand(3, 21, 34, generator=torch.Generator().manual_seed(2))
        _FILES[name] = (codec, bitstream.encode(codec, x))
    return _FILES[name]


def _check(codec, data: bytes) -> None:
    try:
        x_hat, _ = bitstream.decode(codec, data)
    except BitstreamError:
        return
    assert x_hat.shape == (3, 21, 34) and torch.isfinite(x_hat).all()


def _mutate(data: bytes, draw, start: int, end: int) -> bytearray:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(start, max(start, min(end, len(out)) - 1)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "zero"]))
        if op == "flip" and pos < len(out):
            out[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            out[pos:pos] = bytes(draw(st.lists(st.integers(0, 255), min_size=1, max_size=8)))
        elif op == "delete":
            del out[pos : pos + draw(st.integers(1, 8))]
        else:
            out[pos : pos + 4] = bytes(4)
    return out


@pytest.mark.parametrize("name", list_codecs())
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_mutations(name, data):
    codec, original = _codec_and_file(name)
    _check(codec, bytes(_mutate(original, data.draw, 0, len(original))))


@pytest.mark.parametrize("name", list_codecs())
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_payload_mutations_with_valid_crc(name, data):
    """A hostile file: damaged payload, header intact, CRC recomputed to match."""
    codec, original = _codec_and_file(name)
    header_end = 6 + original[5] + 22
    body = _mutate(original[:-4], data.draw, header_end, len(original) - 4)
    _check(codec, bytes(body) + struct.pack(">I", zlib.crc32(bytes(body))))
