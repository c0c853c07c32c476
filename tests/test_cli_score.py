"""``mocodec score`` through the real console script (values equal the library's, exact error lines), and ``score_pairs`` from Python."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from PIL import Image

from mocodec.data.io import read_image
from mocodec.errors import ConfigError
from mocodec.losses import create_distortion, psnr
from mocodec.scoring import score_pairs


@pytest.fixture
def folders(tmp_path, astronaut):
    """ref/{a,b}.png, dist/a.png (noisy), dist/b.jpg (JPEG q30), dist/extra.png (no reference)."""
    ref, dist = tmp_path / "ref", tmp_path / "dist"
    ref.mkdir()
    dist.mkdir()
    a, b = astronaut[40:136, 160:288], astronaut[300:396, 200:328]
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 12, a.shape), 0, 255).astype(np.uint8)
    Image.fromarray(a).save(ref / "a.png")
    Image.fromarray(b).save(ref / "b.png")
    Image.fromarray(noisy).save(dist / "a.png")
    Image.fromarray(b).save(dist / "b.jpg", quality=30)
    Image.fromarray(b).save(dist / "extra.png")
    return ref, dist


def rows(stdout: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(stdout)))


def library_score(name: str, ref, dist, **kwargs) -> float:
    x, y = read_image(ref)[0][None], read_image(dist)[0][None]
    with torch.no_grad():
        return create_distortion(name, **kwargs).score(y, x).item()


def test_psnr_of_two_files(cli, folders):
    ref, dist = folders
    result = cli("score", "--metric", "psnr", str(ref / "a.png"), str(dist / "a.png"))
    assert result.returncode == 0, result.stderr
    (row,) = rows(result.stdout)
    x, y = read_image(ref / "a.png")[0][None], read_image(dist / "a.png")[0][None]
    assert float(row["psnr"]) == pytest.approx(psnr(y, x).item(), abs=1e-6)
    assert 20 < float(row["psnr"]) < 35  # σ = 12 grey levels of noise is about 26.5 dB
    assert result.stderr.strip().endswith(f"psnr: mean {row['psnr']} over 1 image pairs (higher is better)")


def test_ml_featsim_csv_for_two_folders(cli, folders, tmp_path):
    ref, dist = folders
    out = tmp_path / "scores.csv"
    result = cli("score", "--metric", "ml-featsim", "--layers", "3,7", "--weights", "1,2", str(ref), str(dist), "--out", str(out))
    assert result.returncode == 0, result.stderr
    table = rows(out.read_text())
    assert [(r["reference"], r["distorted"]) for r in table] == [
        (str(ref / "a.png"), str(dist / "a.png")),
        (str(ref / "b.png"), str(dist / "b.jpg")),
    ]
    for r in table:  # the real EfficientNet-Lite0 weights, as the library computes them
        expected = library_score("ml-featsim", r["reference"], r["distorted"], layers=(3, 7), layer_weights=(1, 2))
        assert float(r["ml-featsim"]) == pytest.approx(expected, abs=2e-6)
        assert 0 < float(r["ml-featsim"]) < 1
    assert f"unmatched: {dist / 'extra.png'} has no reference" in result.stderr
    assert result.stdout == ""


def test_ml_clipsim_default_offline_error_line(cli, folders):
    ref, dist = folders
    result = cli("score", str(ref / "a.png"), str(dist / "a.png"))  # --metric ml-clipsim, ViT-B-32 / openai
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "mocodec: error: cannot download ml-clipsim weights ViT-B-32/openai (HF_HUB_OFFLINE is set); download "
        "open_clip_model.safetensors or open_clip_pytorch_model.bin from https://huggingface.co/timm/vit_base_patch32_clip_224.openai "
        "and pass the file as pretrained=FILE (CLI: --pretrained FILE)"
    )


def test_option_that_does_not_apply(cli, folders):
    ref, dist = folders
    result = cli("score", "--metric", "psnr", "--layers", "3", str(ref / "a.png"), str(dist / "a.png"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "mocodec: error: --layers does not apply to metric 'psnr'"


def test_unknown_metric_lists_the_known_ones(cli, folders):
    ref, dist = folders
    result = cli("score", "--metric", "ssim", str(ref / "a.png"), str(dist / "a.png"))
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("mocodec: error: unknown distortion 'ssim'; known distortions: ")
    known = line.split(": ")[-1].split(", ")  # the registry's names; other engineers may add more
    assert {"lpips", "ml-clipsim", "ml-featsim", "mse", "msssim"} <= set(known)


def test_pairs_of_different_sizes_and_mixed_inputs(cli, folders, tmp_path):
    ref, dist = folders
    small = tmp_path / "small.png"
    Image.new("RGB", (64, 32)).save(small)
    result = cli("score", "--metric", "psnr", str(ref / "a.png"), str(small))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"mocodec: error: {small} is 64x32 but its reference {ref / 'a.png'} is 128x96; score images of one size"
    )
    result = cli("score", "--metric", "psnr", str(ref), str(small))
    assert result.stderr.strip().splitlines()[-1] == f"mocodec: error: give two image files or two folders, got {ref} and {small}"


def test_score_pairs_from_python(folders, tmp_path):
    ref, dist = folders
    scores = score_pairs(ref, dist, "psnr")
    assert (scores.metric, scores.higher_is_better, scores.unmatched, scores.skipped) == ("psnr", True, [dist / "extra.png"], [])
    assert [(r["reference"], r["distorted"]) for r in scores.rows] == [(ref / "a.png", dist / "a.png"), (ref / "b.png", dist / "b.jpg")]
    assert scores.values == pytest.approx([library_score("mse", r["reference"], r["distorted"]) for r in scores.rows], abs=1e-9)
    assert scores.mean() == pytest.approx(sum(scores.values) / 2)
    assert [r["psnr"] for r in rows(scores.to_csv())] == [f"{v:.6f}" for v in scores.values]
    with pytest.raises(ConfigError, match=r"^layers, net does not apply to metric 'PSNR'$"):
        score_pairs(ref, dist, "PSNR", options={"layers": "3", "net": "alex"})
    # within folders, a pair of two sizes is skipped with why; the others are scored
    Image.new("RGB", (64, 32)).save(tmp_path / "dist" / "b.png")
    (tmp_path / "dist" / "b.jpg").unlink()
    scores = score_pairs(ref, dist, "ms-ssim")
    assert scores.metric == "ms-ssim" and [r["distorted"] for r in scores.rows] == [dist / "a.png"]
    assert scores.skipped == [f"{dist / 'b.png'} is 64x32 but its reference {ref / 'b.png'} is 128x96; score images of one size"]
