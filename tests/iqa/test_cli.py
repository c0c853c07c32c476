"""`mocodec pcmp` and `mocodec iqa` through the real console script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from mocodec.losses import DISTORTIONS

TINY_VOTERS = ("test_efficientnet", "test_resnet", "test_convnext")  # tiny timm classifiers


@pytest.fixture(scope="module")
def voter_weights(tmp_path_factory) -> list[str]:
    """``MODEL=WEIGHTS`` voter specs: tiny random timm classifiers saved as local weights files."""
    import timm

    folder = tmp_path_factory.mktemp("weights")
    specs = []
    for k, name in enumerate(TINY_VOTERS):
        torch.manual_seed(k)
        path = folder / f"{name}.pth"
        torch.save(timm.create_model(name, num_classes=10).state_dict(), path)
        specs.append(f"{name}={path}")
    return specs


@pytest.fixture(scope="module")
def pcmp_build(tmp_path_factory, reference_folder, tiny_voters) -> Path:
    """A tiny PCMP built through the library (voters proj0..proj2), for the `iqa` commands."""
    from mocodec.iqa.distortions import create_family
    from mocodec.iqa.pcmp import BuildSettings, build_pcmp

    out = tmp_path_factory.mktemp("cli") / "pcmp"
    families = [create_family(s) for s in ("jpeg=10,20,40", "gaussian-blur=0.6,1,1.5", "gaussian-noise=0.02,0.04")]
    build_pcmp(reference_folder, out, families, tiny_voters, BuildSettings(tolerance=2.0))
    return out


def test_pcmp_build_by_cli(cli, tmp_path, reference_folder, voter_weights):
    out = tmp_path / "pcmp"
    r = cli(
        "pcmp",
        str(out),
        "--references",
        str(reference_folder),
        "--tolerance",
        "2",
        "--max-pairs",
        "4",
        "--distortions",
        "jpeg=10,20,40",
        "gaussian-blur=0.6,1,1.5",
        "gaussian-noise=0.02,0.04",
        "--voters",
        *voter_weights,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "pcmp.json").read_text())
    assert r.stdout.splitlines()[0] == f"{out}: {summary['pairs']} pairs of 24 distorted images of 3 references"
    assert summary["complete"] and summary["pairs"] <= 3 * 4
    assert list(summary["voters"]) == list(TINY_VOTERS)
    assert summary["config"]["families"]["gaussian-noise"] == ["0.02", "0.04"]


def test_pcmp_refuses_an_empty_reference_folder(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli("pcmp", str(tmp_path / "out"), "--references", str(tmp_path / "empty"), "--voters", "test_efficientnet")
    assert r.returncode == 2
    assert (
        r.stderr.strip().splitlines()[-1] == f"mocodec: error: reference folder {tmp_path / 'empty'} holds no images (.png/.jpg/.webp/...)"
    )
    assert not (tmp_path / "out").exists()


def test_iqa_eval_with_held_out_voters(cli, tmp_path, pcmp_build):
    out = tmp_path / "results"
    r = cli(
        "iqa",
        "eval",
        "--dataset",
        f"pcmp={pcmp_build}",
        "--metric",
        "psnr",
        "msssim",
        "--heldout-voters",
        "proj2",
        "--resamples",
        "100",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert "| metric | 2afc[label] | 2afc[held-out] |" in r.stdout
    rows = json.loads((out / "results.json").read_text())["datasets"][0]["rows"]
    assert [row["metric"] for row in rows] == ["psnr", "msssim"]
    assert all(0 <= row["2afc[label]"] <= 1 and 0 <= row["2afc[held-out]"] <= 1 for row in rows)
    r = cli("iqa", "eval", "--dataset", f"pcmp={pcmp_build}", "--metric", "psnr", "--out", str(out))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == f"mocodec: error: {out} already holds IQA results; pass --force to overwrite them"


def test_iqa_eval_bad_inputs(cli, tmp_path, pcmp_build):
    r = cli("iqa", "eval", "--dataset", f"pcmp={pcmp_build}", "--metric", "sharpness", "--out", str(tmp_path / "r"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("mocodec: error: unknown distortion 'sharpness'; known distortions: ")
    tid = tmp_path / "tid2013"
    tid.mkdir()
    (tid / "mos_with_names.txt").write_text("4.2 i01_01_1.bmp\n")
    r = cli("iqa", "eval", "--dataset", f"tid2013={tid}", "--metric", "psnr", "--out", str(tmp_path / "r"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"mocodec: error: TID2013: image i01_01_1.bmp listed in mos_with_names.txt is missing from {tid / 'distorted_images'}; "
        "re-extract the dataset"
    )
    assert not (tmp_path / "r" / "results.json").exists()


def test_iqa_ablate_writes_weights_that_ml_clipsim_loads(cli, tmp_path, pcmp_build):
    base = tmp_path / "tiny.yaml"
    base.write_text(yaml.safe_dump(DISTORTIONS.meta("ml-clipsim")["test_kwargs"]))
    out = tmp_path / "ablation"
    r = cli(
        "iqa",
        "ablate",
        "--pcmp",
        str(pcmp_build),
        "--metric",
        f"ml-clipsim:{base}",
        "--subset",
        "3,6,9,12",
        "--resamples",
        "50",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    fitted = out / "ml-clipsim-fitted.yaml"
    assert f"fitted weights: {fitted} (use --metric ml-clipsim:{fitted})" in r.stdout
    config = yaml.safe_load(fitted.read_text())
    assert config["layers"] == list(range(1, 13)) and config["model_cfg"] == DISTORTIONS.meta("ml-clipsim")["test_kwargs"]["model_cfg"]
    r = cli(
        "iqa",
        "eval",
        "--dataset",
        f"pcmp={pcmp_build}",
        "--metric",
        f"ml-clipsim:{fitted}",
        "--resamples",
        "20",
        "--out",
        str(tmp_path / "fitted-eval"),
    )
    assert r.returncode == 0, r.stderr
    assert "| ml-clipsim:ml-clipsim-fitted |" in r.stdout


def test_mpd_manifest_command(cli, tmp_path):
    from PIL import Image

    (tmp_path / "archive" / "x").mkdir(parents=True)
    for name in ("ref.png", "x/d1.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / "archive" / name)
    (tmp_path / "scores.csv").write_text("distorted,reference,score\nd1.png,ref.png,0.7\n")
    manifest = tmp_path / "manifest.csv"
    r = cli("iqa", "mpd-manifest", "--root", str(tmp_path / "archive"), "--scores", str(tmp_path / "scores.csv"), "--out", str(manifest))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{manifest}: 1 scored images"
    assert manifest.read_text().splitlines()[1] == "archive/ref.png,archive/x/d1.png,0.7,all"
