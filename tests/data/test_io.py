"""Image reading handles every odd mode explicitly; bad files give one-line ImageReadErrors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from mocodec.data.io import read_image, write_image
from mocodec.errors import ImageReadError


def _save(path, img, **kw):
    img.save(path, **kw)
    return path


def test_rgb_values_are_exact(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x, info = read_image(_save(tmp_path / "a.png", Image.fromarray(arr)))
    assert info.channels == 3 and info.bitdepth == 8 and info.alpha is None
    assert torch.equal(x, torch.from_numpy(arr).permute(2, 0, 1).float() / 255)


def test_grayscale_round_trips_as_one_channel(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, (6, 9), dtype=np.uint8)
    x, info = read_image(_save(tmp_path / "g.png", Image.fromarray(arr)))
    assert x.shape == (3, 6, 9) and info.channels == 1
    write_image(tmp_path / "g2.png", x, info)
    back = Image.open(tmp_path / "g2.png")
    assert back.mode == "L" and np.array_equal(np.array(back), arr)


def test_16bit_grayscale_keeps_full_precision(tmp_path):
    arr = np.array([[0, 1, 65535], [300, 40000, 12345]], dtype=np.uint16)
    x, info = read_image(_save(tmp_path / "g16.png", Image.fromarray(arr)))
    assert info.bitdepth == 16 and abs(float(x[0, 0, 1]) - 1 / 65535) < 1e-9
    write_image(tmp_path / "g16b.png", x, info)
    assert np.array_equal(np.array(Image.open(tmp_path / "g16b.png")), arr)


def test_rgba_alpha_is_kept_losslessly(tmp_path):
    arr = np.random.default_rng(2).integers(0, 256, (4, 5, 4), dtype=np.uint8)
    x, info = read_image(_save(tmp_path / "a.png", Image.fromarray(arr, "RGBA")))
    assert np.array_equal(info.alpha, arr[..., 3])
    write_image(tmp_path / "b.png", x, info)
    assert np.array_equal(np.array(Image.open(tmp_path / "b.png")), arr)


def test_cmyk_and_palette_become_rgb(tmp_path):
    rgb = Image.fromarray(np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    x, info = read_image(_save(tmp_path / "c.jpg", rgb.convert("CMYK")))
    assert x.shape == (3, 8, 8) and info.channels == 3
    x, info = read_image(_save(tmp_path / "p.png", rgb.convert("P")))
    assert x.shape == (3, 8, 8) and info.alpha is None


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (4, 2), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    x, _ = read_image(_save(tmp_path / "r.jpg", img, exif=exif))
    assert x.shape == (3, 4, 2)


def test_animated_image_uses_first_frame_with_a_warning(tmp_path):
    frames = [Image.new("RGB", (3, 3), c) for c in [(255, 0, 0), (0, 0, 255)]]
    path = tmp_path / "a.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match="is animated .2 frames.; using the first frame"):
        x, _ = read_image(path)
    assert x[0].mean() > 0.9 and x[2].mean() < 0.1


def test_16bit_rgb_png_warns_about_8bit_reading(tmp_path):
    # Pillow cannot write 16-bit RGB: build the PNG by hand (IHDR bit depth 16, colour type 2).
    import struct
    import zlib

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    raw = b"".join(b"\x00" + np.full((2, 3), 1000, dtype=">u2").tobytes() for _ in range(2))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    (tmp_path / "rgb16.png").write_bytes(png)
    with pytest.warns(UserWarning, match="16-bit RGB PNG is read by Pillow at 8 bits per channel"):
        read_image(tmp_path / "rgb16.png")


@pytest.mark.parametrize(
    "content,message",
    [
        (None, r"input image .*missing.png does not exist; check the path"),
        (b"hello, not an image", r"bad.png is not an image Pillow can read"),
    ],
)
def test_unreadable_inputs(tmp_path, content, message):
    path = tmp_path / ("missing.png" if content is None else "bad.png")
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=message):
        read_image(path)


def test_truncated_image(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    (tmp_path / "t.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match=r"t.png is truncated or corrupted .*; re-export the image"):
        read_image(tmp_path / "t.png")


def test_pixel_limit(tmp_path):
    path = _save(tmp_path / "big.png", Image.new("RGB", (100, 50)))
    with pytest.raises(ImageReadError, match="has 100x50 = 5000 pixels, over the limit of 4999; raise --max-pixels"):
        read_image(path, max_pixels=4999)
