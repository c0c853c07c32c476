"""The command line itself (its commands, entry points, start-up, ``train``'s hand-over) and
`mocodec compress / decompress / eval-rd`: real runs and every bad-input case.

Each command runs once through the real console script (subprocess); the many
bad-input cases call ``mocodec.commands.main`` in-process, which is the same code path
minus interpreter start-up, and assert the exact one-line message and exit status 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from unittest.mock import Mock

import numpy as np
import pytest
import torch
from PIL import Image

from mocodec.codecs import codec_state, create_codec
from mocodec.commands import COMMANDS, main
from mocodec.errors import ConfigError


@pytest.fixture
def photo(tmp_path, astronaut):
    path = tmp_path / "photo.png"
    Image.fromarray(astronaut[100:197, 150:283]).save(path)  # odd size: 133 x 97
    return path


REPO = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "compressai", "transformers", "ultralytics"}


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err.strip()


# --------------------------------------------------------------------------- the command line itself


def test_help_lists_every_command(cli):
    res = cli("--help")
    assert res.returncode == 0, res.stderr
    listed = {line.split()[0] for line in res.stdout.splitlines() if line.startswith("    ") and not line.startswith("      ")}
    assert listed == {module.NAME for module in COMMANDS}
    assert listed >= {
        "compress",
        "decompress",
        "eval-rd",
        "eval-task",
        "score",
        "export",
        "train",
        "pcmp",
        "iqa",
        "bd",
        "merge",
        "experiment",
        "list",
    }


def test_entry_points_and_a_help_that_imports_nothing_heavy():
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"] == {"mocodec": "mocodec.commands:main"}
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mocodec", "--help"], capture_output=True, text=True, env=os.environ.copy(), timeout=60
    )
    assert res.returncode == 0 and res.stdout.startswith("usage: mocodec "), res.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "mocodec.commands" in imported and not imported & HEAVY, sorted(imported & HEAVY)


def test_train_hands_every_argument_to_lightning_cli(monkeypatch):
    lightning = Mock(return_value=None)
    monkeypatch.setattr("mocodec.training.cli_main", lightning)
    for argv in (["fit", "--config", "X.yaml", "--model.lmbda", "0.01"], ["--help"], ["fit", "-c", "X.yaml", "--trainer.max_epochs=2"], []):
        assert main(["train", *argv]) == 0
        lightning.assert_called_once_with(argv)
        lightning.reset_mock()


def test_train_help_is_lightning_clis(cli):
    res = cli("train", "--help")
    assert res.returncode == 0, res.stderr
    assert "{fit,validate}" in res.stdout and "--config CONFIG" in res.stdout


def test_train_errors_are_one_line(monkeypatch, capsys):
    monkeypatch.setattr("mocodec.training.cli_main", Mock(side_effect=ConfigError("no such key 'lmbd'")))
    assert run(capsys, "train", "fit", "--model.lmbd", "1") == (2, "", "mocodec: error: no such key 'lmbd'")
    monkeypatch.setattr("mocodec.training.cli_main", Mock(side_effect=KeyboardInterrupt))
    assert run(capsys, "train", "fit") == (130, "", "mocodec: interrupted")


# --------------------------------------------------------------------------- compress / decompress / eval-rd


def test_console_script_round_trip(tmp_path, photo, cli):
    res = cli("compress", str(photo), str(tmp_path / "a.moc"), "--codec", "jpeg", "--quality", "80")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{tmp_path / 'a.moc'}: ") and "bpp (jpeg q80, 133x97)" in res.stdout
    res = cli("decompress", str(tmp_path / "a.moc"), str(tmp_path / "a.png"))
    assert res.returncode == 0, res.stderr
    decoded = np.asarray(Image.open(tmp_path / "a.png"), dtype=np.float64)
    original = np.asarray(Image.open(photo), dtype=np.float64)
    assert decoded.shape == original.shape
    assert 10 * np.log10(255**2 / np.mean((decoded - original) ** 2)) > 30


@pytest.mark.parametrize("codec", ["webp", "avif", "bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "mbt2018"])
def test_round_trip_every_codec_in_process(tmp_path, photo, capsys, codec):
    assert run(capsys, "compress", str(photo), str(tmp_path / "a.moc"), "--codec", codec, "--quality", "1")[0] == 0
    assert run(capsys, "decompress", str(tmp_path / "a.moc"), str(tmp_path / "a.png"))[0] == 0
    assert Image.open(tmp_path / "a.png").size == (133, 97)


def test_grayscale_and_rgba_keep_their_mode(tmp_path, capsys):
    gray = tmp_path / "g.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)).save(gray)
    rgba = tmp_path / "r.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 30, 4), dtype=np.uint8), "RGBA").save(rgba)
    for src in (gray, rgba):
        assert run(capsys, "compress", str(src), str(tmp_path / "x.moc"), "--codec", "webp", "--force")[0] == 0
        assert run(capsys, "decompress", str(tmp_path / "x.moc"), str(tmp_path / f"out_{src.name}"))[0] == 0
    assert Image.open(tmp_path / "out_g.png").mode == "L"
    out = Image.open(tmp_path / "out_r.png")
    assert out.mode == "RGBA" and np.array_equal(np.array(out)[..., 3], np.array(Image.open(rgba))[..., 3])


def test_refuses_to_overwrite(tmp_path, photo, capsys):
    target = tmp_path / "a.moc"
    target.write_bytes(b"user data")
    code, _, err = run(capsys, "compress", str(photo), str(target), "--codec", "jpeg")
    assert code == 2 and err == f"mocodec: error: {target} already exists; pass --force to overwrite it"
    assert target.read_bytes() == b"user data"


@pytest.mark.parametrize(
    "args,expected",
    [
        (["compress", "{tmp}/none.png", "{tmp}/o.moc"], "mocodec: error: input image {tmp}/none.png does not exist; check the path"),
        (
            ["compress", "{tmp}/text.png", "{tmp}/o.moc"],
            "mocodec: error: {tmp}/text.png is not an image Pillow can read; give a PNG/JPEG/WebP/... file",
        ),
        (
            ["compress", "{photo}", "{tmp}/o.moc", "--codec", "jpg"],
            "mocodec: error: unknown codec 'jpg'; known codecs: avif, bmshj2018-factorized, ...",
        ),
        (
            ["compress", "{photo}", "{tmp}/o.moc", "--quality", "9"],
            "mocodec: error: quality 9 is out of range for bmshj2018-hyperprior: use 1-8",
        ),
        (["decompress", "{tmp}/none.moc", "{tmp}/o.png"], "mocodec: error: bitstream file {tmp}/none.moc does not exist; check the path"),
        (
            ["decompress", "{photo}", "{tmp}/o.png"],
            "mocodec: error: not a mocodec bitstream (bad magic bytes); give a file written by `mocodec compress`",
        ),
    ],
)
def test_bad_input_one_line_errors(tmp_path, photo, capsys, args, expected):
    (tmp_path / "text.png").write_text("not an image")
    fill = {"tmp": str(tmp_path), "photo": str(photo)}
    code, _, err = run(capsys, *[a.format(**fill) for a in args])
    known = expected.format(**fill)
    if "known codecs" in known:  # the list grows with the registry: compare the stable prefix
        assert err.startswith("mocodec: error: unknown codec 'jpg'; known codecs: avif, ") and "jpeg" in err
    else:
        assert err == known
    assert code == 2 and not (tmp_path / "o.moc").exists() and not (tmp_path / "o.png").exists()


def test_truncated_and_foreign_bitstreams(tmp_path, photo, capsys):
    run(capsys, "compress", str(photo), str(tmp_path / "a.moc"), "--codec", "bmshj2018-hyperprior", "--quality", "1")
    data = (tmp_path / "a.moc").read_bytes()
    (tmp_path / "cut.moc").write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, "decompress", str(tmp_path / "cut.moc"), str(tmp_path / "o.png"))
    assert code == 2 and err == "mocodec: error: bitstream is truncated or corrupted (checksum mismatch); re-encode the image"
    code, _, err = run(capsys, "decompress", str(tmp_path / "a.moc"), str(tmp_path / "o.png"), "--checkpoint", str(tmp_path / "none.pth"))
    assert code == 2 and err == f"mocodec: error: checkpoint {tmp_path}/none.pth does not exist; check the path"
    assert not (tmp_path / "o.png").exists()


def test_file_encoded_with_a_checkpoint_needs_it(tmp_path, photo, capsys):
    torch.manual_seed(5)
    ckpt = tmp_path / "trained.pth"
    torch.save(codec_state(create_codec("bmshj2018-hyperprior", quality=2, N=8, M=12), {"N": 8, "M": 12}), ckpt)
    assert run(capsys, "compress", str(photo), str(tmp_path / "a.moc"), "--checkpoint", str(ckpt))[0] == 0
    code, _, err = run(capsys, "decompress", str(tmp_path / "a.moc"), str(tmp_path / "o.png"))
    assert code == 2 and err.startswith("mocodec: error: bitstream needs weights ")
    assert err.endswith("but the codec has 0000000000000000; pass the --checkpoint it was encoded with")
    assert run(capsys, "decompress", str(tmp_path / "a.moc"), str(tmp_path / "o.png"), "--checkpoint", str(ckpt))[0] == 0


def test_checkpoint_of_another_architecture(tmp_path, photo, capsys):
    ckpt = tmp_path / "hp.pth"
    torch.save(create_codec("bmshj2018-hyperprior", quality=1, N=8, M=12).state_dict(), ckpt)
    code, _, err = run(
        capsys, "compress", str(photo), str(tmp_path / "a.moc"), "--codec", "bmshj2018-factorized", "--checkpoint", str(ckpt)
    )
    assert code == 2 and err.startswith(f"mocodec: error: checkpoint {ckpt} does not match bmshj2018-factorized quality 3 (")
    assert err.endswith("pass the --codec/--quality it was trained as")


def test_missing_pretrained_weights_offline(tmp_path, photo, capsys):
    code, _, err = run(capsys, "compress", str(photo), str(tmp_path / "a.moc"), "--pretrained", "--quality", "4")
    assert code == 2
    assert err.startswith(
        "mocodec: error: cannot download pretrained bmshj2018-hyperprior quality 4 (mse) from https://compressai.s3.amazonaws.com/models/v1/bmshj2018-hyperprior-4-"
    )
    assert err.endswith(", or pass --checkpoint PATH")


def test_eval_rd_console_script(tmp_path, astronaut, cli):
    data = tmp_path / "imgs"
    data.mkdir()
    Image.fromarray(astronaut[:64, :96]).save(data / "a.png")
    Image.fromarray(astronaut[200:264, 200:300]).save(data / "b.png")
    (data / "broken.png").write_bytes(b"\x89PNG broken")
    res = cli(
        "eval-rd",
        "--codec",
        "jpeg",
        "--qualities",
        "20,80",
        "--dataset",
        str(data),
        "--out",
        str(tmp_path / "r.json"),
        "--plot",
        str(tmp_path / "rd.png"),
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert (doc["mocodec"], doc["task"], doc["fidelity"]) == ("results", {"name": "fidelity"}, ["psnr-rgb", "ms-ssim", "bpp-estimated"])
    (results,) = doc["entries"]  # one curve, in CompressAI's schema
    assert results["name"] == "jpeg"
    r = results["results"]
    assert r["quality"] == [20, 80] and r["num_images"] == [2, 2]
    assert set(r) >= {"bpp", "bpp-estimated", "psnr-rgb", "ms-ssim", "encoding_time", "decoding_time"}
    assert r["bpp"][0] < r["bpp"][1] and r["psnr-rgb"][0] < r["psnr-rgb"][1]
    assert r["bpp-estimated"] == [None, None]  # JPEG has no likelihoods
    assert len(results["per_image"]) == 4 and doc["skipped"][0]["id"] == "broken.png"
    # the mean is the mean of the per-image records
    per = [p["bpp"] for p in results["per_image"] if p["quality"] == 20]
    assert r["bpp"][0] == pytest.approx(sum(per) / 2)
    assert (tmp_path / "rd.png").stat().st_size > 1000
    assert "skipped" in res.stderr and "broken.png" in res.stderr
    again = cli("eval-rd", "--codec", "jpeg", "--qualities", "20,80,90", "--dataset", str(data), "--out", str(tmp_path / "r.json"))
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == f"results: {tmp_path / 'r.json'} (resumed)"
    assert json.loads((tmp_path / "r.json").read_text())["entries"][0]["results"]["quality"] == [20, 80, 90]


def test_eval_rd_of_a_checkpoint_is_one_point(tmp_path, astronaut, capsys):
    """A checkpoint holds one codec: eval-rd codes it once, at the quality its file records, not at 8 qualities."""
    data = tmp_path / "imgs"
    data.mkdir()
    Image.fromarray(astronaut[:64, :64]).save(data / "a.png")
    ckpt = tmp_path / "trained.pth"
    torch.save(codec_state(create_codec("bmshj2018-hyperprior", quality=2, N=8, M=12), {"N": 8, "M": 12}), ckpt)
    code, out, err = run(capsys, "eval-rd", "--checkpoint", str(ckpt), "--dataset", str(data), "--out", str(tmp_path / "r.json"))
    assert code == 0, err
    entry = json.loads((tmp_path / "r.json").read_text())["entries"][0]
    assert (entry["name"], entry["results"]["point"], entry["results"]["quality"]) == ("trained", ["trained"], [2])
    assert entry["results"]["bpp-estimated"][0] > 0
    code, _, err = run(
        capsys, "eval-rd", "--checkpoint", str(ckpt), "--qualities", "1-8", "--dataset", str(data), "--out", str(tmp_path / "s.json")
    )
    assert code == 2 and err == (
        "mocodec: error: a checkpoint is one rate point (its quality is recorded in the file): "
        "drop --pretrained/--qualities, or give several checkpoints with a glob"
    )


def test_eval_rd_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "eval-rd", "--codec", "jpeg", "--dataset", str(tmp_path / "empty"), "--out", str(tmp_path / "r.json"))
    assert code == 2 and err == f"mocodec: error: dataset folder {tmp_path}/empty holds no images (.png/.jpg/.webp/...)"
    assert not (tmp_path / "r.json").exists()
