"""``mocodec train`` / ``mocodec export`` through the real console script: a run, its resume, exports, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mocodec import bitstream
from mocodec.codecs import load_codec
from mocodec.data.embedded import load_photo
from mocodec.data.io import read_image
from mocodec.losses import list_distortions
from mocodec.weights import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
TINY_CPU = str(REPO / "configs" / "train" / "tiny_cpu.yaml")
# tiny_cpu.yaml with a tiny codec, 11 crops per epoch (3 steps at batch 4) and one validation batch.
SMALL = [
    "--model.codec_kwargs",
    "{N: 8, M: 12}",
    "--data.crop_size",
    "64",
    "--data.val_crop_size",
    "64",
    "--data.batch_size",
    "4",
    "--data.val_batch_size",
    "2",
    "--data.embedded_repeats",
    "1",
    "--trainer.limit_val_batches",
    "1",
    "--trainer.log_every_n_steps",
    "1",
    "--trainer.enable_progress_bar",
    "false",
]


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, session_cli) -> Path:
    """One epoch of tiny_cpu.yaml with the default loggers (W&B offline + CSV)."""
    run = tmp_path_factory.mktemp("train") / "run"
    done = session_cli("train", "fit", "--config", TINY_CPU, *SMALL, "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(run))
    assert done.returncode == 0, done.stderr[-2000:]
    return run


def test_run_folder_holds_checkpoints_config_and_logs(run_dir):
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 3 and ckpt["mocodec_codec"]["kwargs"] == {"N": 8, "M": 12}
    wandb_id = ckpt["mocodec_run"]["wandb_id"]
    assert [p.name.rsplit("-", 1)[-1] for p in (run_dir / "wandb").glob("offline-run-*")] == [wandb_id]
    header = (run_dir / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "train/bpp", "train/mse", "train/share_mse", "train/aux_loss", "val/bpp", "val/psnr", "val/ms_ssim"} <= set(
        header
    )
    assert "lmbda: 0.013" in (run_dir / "config.yaml").read_text()


def test_resume_last_continues_the_step_count_and_the_wandb_run(run_dir, cli):
    first_id = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["mocodec_run"]["wandb_id"]
    done = cli(
        "train",
        "fit",
        "--config",
        TINY_CPU,
        *SMALL,
        "--trainer.max_epochs",
        "2",
        "--trainer.default_root_dir",
        str(run_dir),
        "--ckpt_path",
        "last",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 6 and ckpt["mocodec_run"]["wandb_id"] == first_id
    assert {p.name.rsplit("-", 1)[-1] for p in (run_dir / "wandb").glob("offline-run-*")} == {first_id}


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "coffee.png"
    Image.fromarray(load_photo("coffee")[100:228, 200:392]).save(path)  # 128 x 192, held out from training
    return path


def test_export_names_the_quality_it_is_given(run_dir, photo, tmp_path, capsys):
    """A run exported as another quality of its codec: files written with it name that quality and decode with no flag."""
    from mocodec.commands import main

    exported, bits = tmp_path / "codec.pth", tmp_path / "coffee.moc"
    assert main(["export", str(run_dir / "checkpoints" / "last.ckpt"), str(exported), "--quality", "5"]) == 0
    assert capsys.readouterr().out.startswith(f"{exported}: bmshj2018-hyperprior quality 5 (")
    assert main(["compress", str(photo), str(bits), "--checkpoint", str(exported)]) == 0
    assert bitstream.unpack(bits.read_bytes()).quality == 5
    assert main(["export", str(run_dir / "checkpoints" / "last.ckpt"), str(tmp_path / "other.pth"), "--codec", "bmshj2018-factorized"]) == 2
    assert capsys.readouterr().err.strip().endswith("name a codec of the same architecture")


def test_export_compress_decompress_round_trip(run_dir, photo, tmp_path, cli):
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    exported, bits, out = tmp_path / "codec.pth", tmp_path / "coffee.moc", tmp_path / "decoded.png"
    done = cli("export", str(ckpt), str(exported))
    assert done.returncode == 0 and done.stdout.startswith(f"{exported}: bmshj2018-hyperprior quality 3 (")
    assert cli("compress", str(photo), str(bits), "--checkpoint", str(exported)).returncode == 0
    done = cli("decompress", str(bits), str(out), "--checkpoint", str(exported))
    assert done.returncode == 0, done.stderr
    decoded = np.asarray(Image.open(out))
    # The training checkpoint itself codes alike (same weights, same CDF tables).
    x, info = read_image(photo)
    codec = load_codec("bmshj2018-hyperprior", checkpoint=ckpt)
    x_hat, _ = bitstream.decode(codec, bitstream.encode(codec, x, info))
    assert decoded.shape == (128, 192, 3)
    assert np.array_equal(decoded, x_hat.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy())


def test_a_bf16_mixed_run_exports_and_codes_like_an_fp32_one(photo, tmp_path, cli):
    run = tmp_path / "bf16"
    done = cli(
        "train",
        "fit",
        "--config",
        TINY_CPU,
        *SMALL,
        "--trainer.max_epochs",
        "1",
        "--trainer.precision",
        "bf16-mixed",
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(run),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ckpt = run / "checkpoints" / "last.ckpt"
    state = load_checkpoint(ckpt)
    assert state["global_step"] == 3
    assert {v.dtype for v in state["state_dict"].values() if v.is_floating_point()} <= {
        torch.float32,
        torch.float64,
    }  # float64: the loss's running means
    exported, bits, out = tmp_path / "codec.pth", tmp_path / "coffee.moc", tmp_path / "decoded.png"
    assert cli("export", str(ckpt), str(exported)).returncode == 0
    assert cli("compress", str(photo), str(bits), "--checkpoint", str(exported)).returncode == 0
    done = cli("decompress", str(bits), str(out), "--checkpoint", str(exported))
    assert done.returncode == 0, done.stderr
    # The checkpoint itself codes alike, in this process (tables in fp32, no autocast anywhere on the coding path).
    x, info = read_image(photo)
    codec = load_codec("bmshj2018-hyperprior", checkpoint=ckpt)
    data = bitstream.encode(codec, x, info)
    x_hat, _ = bitstream.decode(codec, data)
    assert len(data) == bits.stat().st_size  # the same strings (the headers differ only in the weights files' digests)
    assert np.array_equal(np.asarray(Image.open(out)), x_hat.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy())


def test_unknown_distortion(cli, tmp_path):
    done = cli(
        "train",
        "fit",
        "--config",
        TINY_CPU,
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--model.distortions",
        "{msse: 1.0}",
    )
    assert done.returncode == 2
    assert last_line(done.stderr) == f"mocodec: error: unknown distortion 'msse'; known distortions: {', '.join(list_distortions())}"


@pytest.mark.parametrize(
    "override, message",
    [
        (["--model.distortions.mse", "-1"], "weight of distortion 'mse' must be a finite number >= 0, got -1.0"),
        (["--model.lmbda", "-0.01"], "lambda must be a finite number >= 0, got -0.01"),
    ],
    ids=["negative-weight", "negative-lambda"],
)
def test_negative_weight_or_lambda(cli, tmp_path, override, message):
    done = cli("train", "fit", "--config", TINY_CPU, "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path), *override)
    assert done.returncode == 2 and last_line(done.stderr) == f"mocodec: error: {message}"


def test_empty_dataset_folder(cli, tmp_path):
    empty = tmp_path / "images"
    empty.mkdir()
    done = cli(
        "train",
        "fit",
        "--config",
        TINY_CPU,
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path / "run"),
        "--data.train",
        str(empty),
    )
    assert done.returncode == 2
    assert (
        last_line(done.stderr)
        == f"mocodec: error: dataset folder {empty} holds no images (.png/.jpg/.webp/...); give a folder of training images"
    )


def test_typo_in_a_config_key(cli, tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text(Path(TINY_CPU).read_text().replace("  lmbda: 0.0130", "  lmbdaa: 0.0130"))
    done = cli("train", "fit", "--config", str(config), "--trainer.logger", "false")
    assert done.returncode == 2 and last_line(done.stderr) == "mocodec: error: Subcommand 'fit' does not accept option 'model.lmbdaa'"


def test_resuming_a_checkpoint_of_another_architecture(run_dir, cli, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir / "checkpoints", copy / "checkpoints")
    done = cli(
        "train",
        "fit",
        "--config",
        TINY_CPU,
        *SMALL,
        "--model.codec_kwargs",
        "{N: 8, M: 16}",
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(copy),
        "--ckpt_path",
        "last",
    )
    assert done.returncode == 2 and last_line(done.stderr) == (
        "mocodec: error: the checkpoint holds a bmshj2018-hyperprior quality 3 (M=12, N=8) codec but this run builds "
        "bmshj2018-hyperprior quality 3 (M=16, N=8); resume with the configuration it was trained with"
    )


def test_coding_with_a_checkpoint_of_another_architecture(run_dir, photo, cli, tmp_path):
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    done = cli("compress", str(photo), str(tmp_path / "x.moc"), "--codec", "mbt2018", "--checkpoint", str(ckpt))
    assert done.returncode == 2
    assert (
        last_line(done.stderr)
        == f"mocodec: error: checkpoint {ckpt} holds a bmshj2018-hyperprior codec, not mbt2018; pass --codec bmshj2018-hyperprior"
    )


def test_export_of_a_file_that_is_not_a_training_checkpoint(cli, tmp_path):
    plain = tmp_path / "weights.pth"
    torch.save({"g_a.0.weight": torch.zeros(1)}, plain)
    done = cli("export", str(plain), str(tmp_path / "out.pth"))
    assert done.returncode == 2 and last_line(done.stderr) == (
        f"mocodec: error: {plain} is not a mocodec training checkpoint (no 'mocodec_codec' entry); give a .ckpt written by `mocodec train`"
    )
    done = cli(
        "train",
        "fit",
        "--config",
        TINY_CPU,
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--ckpt_path",
        str(plain),
    )
    assert done.returncode == 2 and last_line(done.stderr) == (
        f"mocodec: error: {plain} is not a mocodec training checkpoint; to start from its weights, pass --model.init_weights PATH instead of --ckpt_path"
    )
