"""Files decode on every machine: fresh processes with other thread counts and kernels, and the refusals.

The matrix itself is ``benchmarks/portability.py`` (RELIABILITY.md has its figures): files are
written here with the default settings, then decoded in fresh processes under 1 and 2 threads x
ONEDNN_MAX_CPU_ISA {native, AVX2, SSE41} x ATEN_CPU_CAPABILITY {native, avx2, default}.
"""

from __future__ import annotations

import importlib.util
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from mocodec import bitstream
from mocodec.commands import main

REPO = Path(__file__).resolve().parents[2]
KODAK = REPO.parent / "shared" / "data" / "kodak"


def portability():
    spec = importlib.util.spec_from_file_location("portability", REPO / "benchmarks" / "portability.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_rows(rows: list[dict]) -> None:
    """Exact files: decoded everywhere with the encoder's symbols. Float files: decoded where only the thread count
    differs (the writer's is used), refused in one line elsewhere. Never a decode with other symbols."""
    for row in rows:
        assert row["garbage"] == 0, row
        if "(exact)" in row["codec"] or row["kernels"] == "native kernels":
            assert row["refused"] == 0 and row["symbols differ"] == 0, row
        else:
            assert row["refused"] == row["files"], row
            assert row["reasons"] == ["this file's entropy parameters were computed in float arithmetic"], row


@pytest.mark.parametrize("quick", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["4 environments", "whole matrix"])
def test_every_learned_codec_s_files_decode_under_other_threads_and_kernels(tmp_path, quick):
    """Every registry codec at test size, each arithmetic it has, two photo crops. The default suite decodes in 4 fresh
    processes holding every value of each axis; the whole matrix (12 processes, 18 on AVX-512) is a slow test."""
    matrix = portability()
    written = matrix.write(tmp_path, matrix.tiny_jobs(), matrix.tiny_images())
    rows = matrix.summarize(matrix.run_matrix(tmp_path, quick=quick), written)
    check_rows(rows)
    exact = {row["codec"] for row in rows if "(exact)" in row["codec"]}
    assert exact == {
        f"{name} (exact)" for name in ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "mbt2018-mean-small", "mbt2018")
    }
    assert {"mlicpp (float)", "mlicpp-tiny (float)"} <= {row["codec"] for row in rows}


@pytest.mark.slow
@pytest.mark.skipif(not KODAK.is_dir(), reason=f"needs the Kodak images in {KODAK}")
def test_the_shipped_codec_s_kodak_files_decode_under_other_threads_and_kernels(tmp_path):
    """96 files (24 Kodak images x qualities 1-4, shipped weights) in every environment of the matrix."""
    matrix = portability()
    jobs = [{"name": "mbt2018-mean-small", "quality": q, "pretrained": True} for q in range(1, 5)]
    written = matrix.write(tmp_path, jobs, matrix.dataset_images(KODAK, None))
    rows = matrix.summarize(matrix.run_matrix(tmp_path), written)
    check_rows(rows)
    assert sum(row["files"] for row in rows) == 96 * len(matrix.environments(__import__("torch").backends.cpu.get_cpu_capability()))


# --- the command line: a file this machine does not reproduce is one line, exit 2, and no image


@pytest.fixture
def photo(tmp_path, astronaut):
    path = tmp_path / "photo.png"
    Image.fromarray(astronaut[100:164, 150:246]).save(path)
    return path


def decompress(capsys, source: Path, target: Path) -> tuple[int, str]:
    code = main(["decompress", str(source), str(target)])
    return code, capsys.readouterr().err.strip()


def test_a_float_file_of_other_arithmetic_is_refused_and_nothing_is_written(tmp_path, photo, capsys):
    assert (
        main(["compress", str(photo), str(tmp_path / "a.moc"), "--codec", "mbt2018-mean", "--quality", "1", "--arithmetic", "float"]) == 0
    )
    assert "float arithmetic" in capsys.readouterr().out
    bs = bitstream.unpack((tmp_path / "a.moc").read_bytes())
    bs.writer = b"\xff" * 4  # the fingerprint of another CPU kind, kernel set, torch version or GPU
    (tmp_path / "b.moc").write_bytes(bitstream.pack(bs))
    code, err = decompress(capsys, tmp_path / "b.moc", tmp_path / "b.png")
    assert code == 2 and err.count("\n") == 0
    assert err.startswith(
        "mocodec: error: this file's entropy parameters were computed in float arithmetic (--arithmetic float was asked for)"
    )
    assert err.endswith(
        "decode it where it was written (same torch, CompressAI and CPU kind or GPU), or re-encode it with --arithmetic exact"
    )
    assert not (tmp_path / "b.png").exists()
    assert decompress(capsys, tmp_path / "a.moc", tmp_path / "a.png")[0] == 0  # the untouched file decodes here


def test_latents_that_fail_the_check_are_refused_and_nothing_is_written(tmp_path, photo, capsys):
    """A payload altered after writing (its CRC recomputed, as a hostile file would): the entropy decoder recovers
    other symbols, which the latent check catches before any image exists."""
    compress = ["compress", str(photo), str(tmp_path / "a.moc"), "--codec", "mbt2018-mean-small", "--quality", "4", "--pretrained"]
    assert main(compress) == 0
    data = bytearray((tmp_path / "a.moc").read_bytes())
    bs = bitstream.unpack(bytes(data))
    y_string_at = len(data) - 4 - sum(4 + len(s) for s in bs.strings) + 4
    data[y_string_at + len(bs.strings[0]) // 2] ^= 0x5A
    body = bytes(data[:-4])
    (tmp_path / "b.moc").write_bytes(body + struct.pack(">I", zlib.crc32(body)))
    code, err = decompress(capsys, tmp_path / "b.moc", tmp_path / "b.png")
    assert code == 2 and err.count("\n") == 0
    assert err.startswith("mocodec: error: the decoded latents fail the file's check (CRC of the quantized latents, exact arithmetic)")
    assert not (tmp_path / "b.png").exists()
