"""The on-disk container for one compressed image.

Layout (all integers big-endian)::

    magic        4s   b"MOCO"
    version      B    FORMAT_VERSION
    name_len     B    then the codec's registry name (ASCII)
    quality      H
    weights_id   8s   first 8 bytes of the weights file's SHA-256 (zeros: random/classic)
    height       I    original image size, before any padding
    width        I
    channels     B    1 (grayscale) or 3; the codec always codes RGB
    bitdepth     B    8 or 16 (of the original file; decoded images are written alike)
    has_alpha    B    0 or 1
    arithmetic   B    how the entropy parameters were computed: 0 none (classic codecs),
                      1 exact (portable), 2 float (bound to the arithmetic that wrote it)
    [writer]     4s   float only: fingerprint of the writer's arithmetic (torch, CPU kind or GPU)
    [threads]    B    float only: the writer's thread count (the decoder uses it too)
    [check]      I    learned codecs: CRC-32 of the quantized latents the entropy decoder must recover
    n_groups     B    then per group: length I + bytes (one entropy-coded string per latent)
    [alpha]           if has_alpha: length I + zlib-compressed H*W uint8 alpha plane (lossless)
    crc32        I    of every byte before it

The header is validated before anything is allocated from it, and the CRC is checked
before any payload reaches an entropy decoder, so a truncated or damaged file gives a
:class:`~mocodec.errors.BitstreamError`, never a crash. The latent check is verified after
entropy decoding and before an image is returned: a decoder that derived other entropy
parameters than the encoder (another machine's float arithmetic, an altered payload) fails
with :class:`~mocodec.errors.ForeignArithmeticError` instead of returning a wrong image.
Version 1 files (no arithmetic field, no latent check; written by CompressAI's float coder)
are still read, and decoded as they were. bpp figures count the whole file, header and CRC
included.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from mocodec.codecs.arithmetic import EXACT, FLOAT, float_arithmetic_description, float_fingerprint, torch_threads
from mocodec.codecs.base import all_finite, device_of
from mocodec.data.io import DEFAULT_MAX_PIXELS, ImageInfo
from mocodec.errors import BitstreamError, ForeignArithmeticError

MAGIC = b"MOCO"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
ARITHMETIC_CODES = {None: 0, EXACT: 1, FLOAT: 2}
ARITHMETIC_NAMES = {code: name for name, code in ARITHMETIC_CODES.items()}
MAX_SIDE = 1 << 16  # 65536 pixels per side
MAX_GROUPS = 16


@dataclass
class Bitstream:
    """A parsed container: header fields, the coded strings and the optional alpha plane."""

    codec: str
    quality: int
    weights_id: bytes
    height: int
    width: int
    channels: int = 3
    bitdepth: int = 8
    strings: list[bytes] = field(default_factory=list)
    alpha: np.ndarray | None = None
    arithmetic: str | None = None  # EXACT, FLOAT, or None (no learned entropy parameters)
    writer: bytes | None = None  # float files: the writer's arithmetic fingerprint (None: a version 1 file)
    threads: int = 0  # float files: the writer's thread count
    check: int | None = None  # learned codecs: CRC-32 of the quantized latents (None: a version 1 file)
    version: int = FORMAT_VERSION

    @property
    def info(self) -> ImageInfo:
        return ImageInfo(channels=self.channels, bitdepth=self.bitdepth, alpha=self.alpha)


def pack(bs: Bitstream) -> bytes:
    name = bs.codec.encode("ascii")
    if not 0 < len(name) < 256:
        raise ValueError(f"codec name {bs.codec!r} must be 1-255 ASCII bytes")
    if len(bs.weights_id) != 8:
        raise ValueError("weights_id must be 8 bytes")
    if (bs.arithmetic is None) != (bs.check is None):
        raise ValueError("a latent check goes with learned entropy parameters, and only with them")
    arithmetic = [struct.pack(">B", ARITHMETIC_CODES[bs.arithmetic])]
    if bs.arithmetic == FLOAT:
        if bs.writer is None or len(bs.writer) != 4:
            raise ValueError("a float file records its writer's 4-byte arithmetic fingerprint")
        arithmetic += [bs.writer, struct.pack(">B", min(bs.threads, 255))]
    if bs.check is not None:
        arithmetic.append(struct.pack(">I", bs.check))
    parts = [
        MAGIC,
        struct.pack(">BB", FORMAT_VERSION, len(name)),
        name,
        struct.pack(
            ">H8sIIBBB",
            bs.quality,
            bs.weights_id,
            bs.height,
            bs.width,
            bs.channels,
            bs.bitdepth,
            int(bs.alpha is not None),
        ),
        *arithmetic,
        struct.pack(">B", len(bs.strings)),
    ]
    for s in bs.strings:
        parts += [struct.pack(">I", len(s)), s]
    if bs.alpha is not None:
        alpha = zlib.compress(np.ascontiguousarray(bs.alpha, dtype=np.uint8).tobytes(), 9)
        parts += [struct.pack(">I", len(alpha)), alpha]
    body = b"".join(parts)
    return body + struct.pack(">I", zlib.crc32(body))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BitstreamError(f"file is truncated: {what} needs {n} bytes, {len(self.data) - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def unpack(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Bitstream:
    """Parse and validate a container; every problem is a one-line BitstreamError.

    ``max_pixels`` bounds what a header may claim (default: Pillow's decompression-bomb
    limit, as for input images), so a forged header cannot make the decoder allocate
    without bound.
    """
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError("not a mocodec bitstream (bad magic bytes); give a file written by `mocodec compress`")
    r = _Reader(data)
    r.take(4, "magic")
    version, name_len = r.unpack(">BB", "header")
    if version not in READABLE_VERSIONS:
        raise BitstreamError(
            f"bitstream format version {version} is not supported (this mocodec reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}); decode it with the mocodec that wrote it"
        )
    try:
        codec = r.take(name_len, "codec name").decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("bitstream header is corrupted (codec name is not ASCII)") from None
    quality, weights_id, height, width, channels, bitdepth, has_alpha = r.unpack(">H8sIIBBB", "header")
    arithmetic, writer, threads, check = read_arithmetic(r, version)
    (n_groups,) = r.unpack(">B", "header")
    if not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise BitstreamError(
            f"bitstream header claims a {width}x{height} image, outside the supported 1..{MAX_SIDE} per side; the file is corrupted"
        )
    if height * width > max_pixels:
        raise BitstreamError(
            f"bitstream header claims a {width}x{height} image, over the limit of {max_pixels} pixels; raise --max-pixels if you trust this file"
        )
    if channels not in (1, 3) or bitdepth not in (8, 16) or has_alpha not in (0, 1) or n_groups > MAX_GROUPS:
        raise BitstreamError("bitstream header is corrupted (channels/bit depth/alpha/groups out of range)")
    if len(data) < r.pos + 4 or zlib.crc32(data[:-4]) != struct.unpack(">I", data[-4:])[0]:
        raise BitstreamError("bitstream is truncated or corrupted (checksum mismatch); re-encode the image")
    r.data = data[:-4]  # the CRC is not payload
    strings = [r.take(r.unpack(">I", "string length")[0], "coded string") for _ in range(n_groups)]
    alpha = None
    if has_alpha:
        packed = r.take(r.unpack(">I", "alpha length")[0], "alpha plane")
        d = zlib.decompressobj()
        try:
            raw = d.decompress(packed, height * width + 1)
        except zlib.error:
            raise BitstreamError("bitstream alpha plane is corrupted") from None
        if len(raw) != height * width:
            raise BitstreamError("bitstream alpha plane has the wrong size; the file is corrupted")
        alpha = np.frombuffer(raw, dtype=np.uint8).reshape(height, width).copy()
    if r.pos != len(r.data):
        raise BitstreamError(f"bitstream has {len(r.data) - r.pos} unexpected trailing bytes; the file is corrupted")
    return Bitstream(
        codec, quality, weights_id, height, width, channels, bitdepth, strings, alpha, arithmetic, writer, threads, check, version
    )


def read_arithmetic(r: _Reader, version: int) -> tuple[str | None, bytes | None, int, int | None]:
    """(arithmetic, writer, threads, check) of a header; a version 1 file has none of them (see :func:`file_arithmetic`)."""
    if version == 1:
        return None, None, 0, None
    (code,) = r.unpack(">B", "header")
    if code not in ARITHMETIC_NAMES:
        raise BitstreamError("bitstream header is corrupted (unknown arithmetic)")
    arithmetic = ARITHMETIC_NAMES[code]
    writer, threads = None, 0
    if arithmetic == FLOAT:
        writer, threads = r.unpack(">4sB", "header")
        if threads < 1:
            raise BitstreamError("bitstream header is corrupted (thread count 0)")
    check = r.unpack(">I", "header")[0] if arithmetic is not None else None
    return arithmetic, writer, threads, check


def file_arithmetic(bs: Bitstream, codec: nn.Module) -> str | None:
    """The arithmetic ``bs`` was written in; a version 1 file of a learned codec: CompressAI's float coder's."""
    if bs.version == 1:
        return FLOAT if codec.arithmetics else None
    return bs.arithmetic


def encode(codec: nn.Module, x: Tensor, info: ImageInfo | None = None) -> bytes:
    """Compress one 3 x H x W image (in [0, 1]) into a complete container."""
    info = info or ImageInfo()
    if x.dim() != 3 or x.shape[0] != 3:
        raise BitstreamError(f"encode takes one 3 x H x W image, got shape {tuple(x.shape)}")
    out = codec.compress(x.unsqueeze(0).to(device_of(codec)))  # transforms on the codec's device, rANS on the CPU
    strings = [group[0] for group in out["strings"]]
    alpha = info.alpha
    if alpha is not None and alpha.dtype != np.uint8:
        alpha = (alpha >> 8).astype(np.uint8)
    arithmetic = codec.arithmetic
    writer = float_fingerprint(device_of(codec)) if arithmetic == FLOAT else None
    check = out["check"][0] if arithmetic is not None else None
    return pack(
        Bitstream(
            codec.codec_name,
            codec.quality,
            codec.weights_id,
            x.shape[1],
            x.shape[2],
            info.channels,
            info.bitdepth,
            strings,
            alpha,
            arithmetic,
            writer,
            torch.get_num_threads(),
            check,
        )
    )


def check_codec(bs: Bitstream, codec: nn.Module) -> None:
    """Refuse to decode with a codec other than the one that wrote ``bs``."""
    if bs.codec != codec.codec_name:
        raise BitstreamError(f"bitstream was written by codec {bs.codec}, not {codec.codec_name}; decode with --codec {bs.codec}")
    if bs.quality != codec.quality and codec.weights_id == bytes(8):
        raise BitstreamError(f"bitstream was written at quality {bs.quality}, this codec has quality {codec.quality}")
    if bs.weights_id != codec.weights_id:
        raise BitstreamError(
            f"bitstream needs weights {bs.weights_id.hex()} but the codec has {codec.weights_id.hex()}; "
            "pass the --checkpoint it was encoded with"
        )


def check_arithmetic(bs: Bitstream, codec: nn.Module) -> None:
    """Refuse a file whose entropy parameters ``codec`` cannot reproduce here, before decoding it."""
    if bs.version == 1 or bs.arithmetic is None:
        return  # nothing recorded to check (a version 1 file is decoded as it always was)
    if bs.arithmetic not in codec.arithmetics:
        raise BitstreamError(f"bitstream claims {bs.arithmetic} arithmetic, which {bs.codec} does not have; the file is corrupted")
    if bs.arithmetic == FLOAT and bs.writer is not None and bs.writer != float_fingerprint(device_of(codec)):
        why = "--arithmetic float was asked for" if codec.arithmetics != (FLOAT,) else f"{bs.codec} has no exact arithmetic"
        fix = ", or re-encode it with --arithmetic exact" if EXACT in codec.arithmetics else ""
        raise ForeignArithmeticError(
            f"this file's entropy parameters were computed in float arithmetic ({why}), which decodes only with the "
            f"arithmetic that wrote it, and this machine's differs ({float_arithmetic_description(device_of(codec))}); "
            f"decode it where it was written (same torch, CompressAI and CPU kind or GPU){fix}"
        )


@contextlib.contextmanager
def coding_arithmetic(codec: nn.Module, bs: Bitstream) -> Iterator[None]:
    """The block decodes ``bs`` as it was written: in its arithmetic, and a float file with its writer's thread count."""
    before = codec.arithmetic
    codec.arithmetic = file_arithmetic(bs, codec) or before
    try:
        with torch_threads(bs.threads) if bs.arithmetic == FLOAT and bs.threads else contextlib.nullcontext():
            yield
    finally:
        codec.arithmetic = before


def decode(codec: nn.Module, data: bytes | Bitstream) -> tuple[Tensor, ImageInfo]:
    """Decode a container with ``codec`` (which must match it) into 3 x H x W and its ImageInfo."""
    bs = data if isinstance(data, Bitstream) else unpack(data)
    check_codec(bs, codec)
    check_arithmetic(bs, codec)
    try:
        with coding_arithmetic(codec, bs):
            out = codec.decompress([[s] for s in bs.strings], (bs.height, bs.width))
    except BitstreamError:
        raise
    except (RuntimeError, ValueError, IndexError) as exc:
        raise BitstreamError(f"bitstream payload does not decode with {bs.codec} ({type(exc).__name__}); the file is corrupted") from None
    if bs.check is not None and out["check"][0] != bs.check:
        raise ForeignArithmeticError(
            f"the decoded latents fail the file's check (CRC of the quantized latents, {bs.arithmetic} arithmetic): "
            "this machine does not reproduce the arithmetic that wrote the file, or its payload was altered; "
            "no image was produced. Decode it where it was written"
            + (", or re-encode it with --arithmetic exact" if bs.arithmetic == FLOAT and EXACT in codec.arithmetics else "")
        )
    x_hat = out["x_hat"][0].float().cpu().clamp(0, 1)
    if tuple(x_hat.shape[-2:]) != (bs.height, bs.width) or not all_finite(x_hat):
        raise BitstreamError("bitstream decoded to an image of the wrong size or with invalid values; the file is corrupted")
    return x_hat, bs.info
