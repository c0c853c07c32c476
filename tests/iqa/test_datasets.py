"""Loaders of LIVE, TID2013, KADID-10k and MPD on tiny fake trees in their released layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from mocodec.errors import ConfigError, ImageReadError
from mocodec.iqa import load_iqa_dataset
from mocodec.iqa.datasets import LIVE_FOLDERS, write_mpd_manifest


def tiny_image(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------- LIVE release 2


@pytest.fixture
def live_tree(tmp_path: Path) -> Path:
    root = tmp_path / "live"
    n = sum(count for _, count in LIVE_FOLDERS)  # 982
    orgs = np.zeros(n, dtype=np.uint8)
    orgs[::5] = 1  # every fifth entry is a reference copy: 197 of them
    dmos = np.arange(n, dtype=np.float64) / 10
    refnames = np.empty((1, n), dtype=object)
    for i in range(n):
        refnames[0, i] = f"ref{i % 3}.bmp"
    root.mkdir()
    savemat(root / "dmos.mat", {"dmos": dmos[None], "orgs": orgs[None]})
    savemat(root / "dmos_realigned.mat", {"dmos_new": 100 - dmos[None], "dmos_std": np.ones((1, n)), "orgs": orgs[None]})
    savemat(root / "refnames_all.mat", {"refnames_all": refnames})
    for folder, count in LIVE_FOLDERS:
        for k in range(1, count + 1):
            tiny_image(root / folder / f"img{k}.bmp")
    for r in range(3):
        tiny_image(root / "refimgs" / f"ref{r}.bmp")
    return root


def test_live_reads_the_released_layout(live_tree: Path):
    ds = load_iqa_dataset("live", live_tree)
    assert len(ds) == 982 - 197 and not ds.higher_is_better and ds.score_name == "dmos"
    first = ds.images[0]  # entry 0 is a reference copy; entry 1 is jp2k/img2.bmp
    assert (first.distorted.parent.name, first.distorted.name, first.score, first.type) == ("jp2k", "img2.bmp", 0.1, "jp2k")
    assert first.reference == live_tree / "refimgs" / "ref1.bmp"
    jpeg = [im for im in ds.images if im.type == "jpeg"]
    assert jpeg[0].distorted.name == "img1.bmp" and jpeg[0].score == pytest.approx(22.7)  # entry 227, the first jpeg
    assert {im.type for im in ds.images} == {f for f, _ in LIVE_FOLDERS}
    realigned = load_iqa_dataset("live-realigned", live_tree)
    assert realigned.images[0].score == pytest.approx(100 - 0.1)


def test_live_with_a_missing_image_or_a_wrong_count(live_tree: Path):
    (live_tree / "wn" / "img7.bmp").unlink()
    with pytest.raises(ImageReadError) as exc:
        load_iqa_dataset("live", live_tree)
    assert str(exc.value) == f"LIVE: image img7.bmp listed in dmos.mat is missing from {live_tree / 'wn'}; re-extract the dataset"
    savemat(live_tree / "dmos.mat", {"dmos": np.zeros((1, 5)), "orgs": np.zeros((1, 5))})
    with pytest.raises(ConfigError) as exc:
        load_iqa_dataset("live", live_tree)
    assert str(exc.value) == (
        "LIVE: dmos.mat holds 5 scores, 5 orgs flags and refnames_all.mat 982 names; "
        "release 2 has 982 (227 jp2k + 233 jpeg + 174 wn + 174 gblur + 174 fastfading)"
    )


# --------------------------------------------------------------------------- TID2013


@pytest.fixture
def tid_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tid2013"
    # the release mixes cases: lower-case distorted names, upper-case reference names
    lines = ["5.51429 i01_01_1.bmp", "4.05714 i01_10_5.bmp", "", "6.02 I02_17_3.BMP"]
    (root / "distorted_images").mkdir(parents=True)
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    for name in ("i01_01_1.bmp", "i01_10_5.bmp", "I02_17_3.BMP"):
        tiny_image(root / "distorted_images" / name)
    for name in ("I01.BMP", "i02.bmp"):
        tiny_image(root / "reference_images" / name)
    return root


def test_tid2013_reads_the_released_layout(tid_tree: Path):
    ds = load_iqa_dataset("tid2013", tid_tree)
    assert ds.higher_is_better and ds.score_name == "mos"
    assert [(im.score, im.type, im.level) for im in ds.images] == [
        (5.51429, "01 additive noise", "1"),
        (4.05714, "10 jpeg", "5"),
        (6.02, "17 contrast", "3"),
    ]
    assert [im.reference.name for im in ds.images] == ["I01.BMP", "I01.BMP", "i02.bmp"]


def test_tid2013_bad_inputs(tid_tree: Path):
    (tid_tree / "distorted_images" / "i01_10_5.bmp").unlink()
    with pytest.raises(ImageReadError) as exc:
        load_iqa_dataset("tid2013", tid_tree)
    assert str(exc.value) == (
        f"TID2013: image i01_10_5.bmp listed in mos_with_names.txt is missing from {tid_tree / 'distorted_images'}; re-extract the dataset"
    )
    (tid_tree / "mos_with_names.txt").write_text("5.5 i01_01_1.bmp\nfive i01_01_1.bmp\n")
    with pytest.raises(ConfigError) as exc:
        load_iqa_dataset("tid2013", tid_tree)
    assert str(exc.value) == "TID2013: mos_with_names.txt line 2 does not parse as 'MOS iRR_TT_L.bmp': 'five i01_01_1.bmp'"
    with pytest.raises(ConfigError) as exc:
        load_iqa_dataset("tid2013", tid_tree / "nowhere")
    assert str(exc.value) == f"TID2013 folder {tid_tree / 'nowhere'} does not exist or is not a directory"


# --------------------------------------------------------------------------- KADID-10k


@pytest.fixture
def kadid_tree(tmp_path: Path) -> Path:
    root = tmp_path / "kadid10k"
    rows = [
        "dist_img,ref_img,dmos,var",
        "I01_01_01.png,I01.png,4.57,0.496",
        "I01_10_05.png,I01.png,1.2,0.3",
        "I02_25_03.png,I02.png,3.0,0.1",
    ]
    (root / "images").mkdir(parents=True)
    (root / "dmos.csv").write_text("\n".join(rows) + "\n")
    for name in ("I01_01_01.png", "I01_10_05.png", "I02_25_03.png", "I01.png", "I02.png"):
        tiny_image(root / "images" / name)
    return root


def test_kadid10k_reads_the_released_layout(kadid_tree: Path):
    ds = load_iqa_dataset("kadid10k", kadid_tree)
    assert ds.higher_is_better  # the "dmos" column is a MOS on 1-5
    assert [(im.score, im.type, im.level, im.reference.name) for im in ds.images] == [
        (4.57, "01 gaussian blur", "01", "I01.png"),
        (1.2, "10 jpeg", "05", "I01.png"),
        (3.0, "25 contrast", "03", "I02.png"),
    ]


def test_kadid10k_bad_inputs(kadid_tree: Path):
    (kadid_tree / "dmos.csv").write_text("dist_img,ref_img,var\nI01_01_01.png,I01.png,0.4\n")
    with pytest.raises(ConfigError) as exc:
        load_iqa_dataset("kadid10k", kadid_tree)
    assert str(exc.value) == "KADID-10k: dmos.csv lacks column(s) dmos; expected dist_img,ref_img,dmos"
    (kadid_tree / "dmos.csv").write_text("dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,n/a,0.4\n")
    with pytest.raises(ConfigError) as exc:
        load_iqa_dataset("kadid10k", kadid_tree)
    assert str(exc.value) == "KADID-10k: dmos.csv line 2 has dmos 'n/a', not a number"


# --------------------------------------------------------------------------- MPD through its manifest


def test_mpd_manifest_converter_and_loaders(tmp_path: Path):
    archive = tmp_path / "mpd_archive"
    for name, value in [("refs/r1.png", 100), ("nested/a/d1.png", 90), ("nested/b/d2.png", 80), ("d3.png", 70)]:
        tiny_image(archive / name, value)
    table = tmp_path / "scores.csv"
    table.write_text("img,ref,mps\nd1.png,r1.png,0.9\nd2.png,r1.png,0.4\nd3.png,r1.png,0.4\n")
    manifest = tmp_path / "manifest.csv"
    n = write_mpd_manifest(archive, table, manifest, distorted_column="img", reference_column="ref", score_column="mps")
    assert n == 3
    assert manifest.read_text().splitlines() == [
        "reference,distorted,score,type",
        "mpd_archive/refs/r1.png,mpd_archive/nested/a/d1.png,0.9,all",
        "mpd_archive/refs/r1.png,mpd_archive/nested/b/d2.png,0.4,all",
        "mpd_archive/refs/r1.png,mpd_archive/d3.png,0.4,all",
    ]
    scored = load_iqa_dataset("mpd", manifest)
    assert scored.scores.tolist() == [0.9, 0.4, 0.4]
    assert scored.images[0].distorted == tmp_path / "mpd_archive/nested/a/d1.png"
    pairs = load_iqa_dataset("mpd-pairs", manifest)
    # (d1, d2): d1 scored higher -> 1; (d1, d3) -> 1; (d2, d3): equal scores -> 0.5
    assert [(p.a.name, p.b.name) for p in pairs.pairs] == [("d1.png", "d2.png"), ("d1.png", "d3.png"), ("d2.png", "d3.png")]
    assert pairs.labels["label"].tolist() == [1.0, 1.0, 0.5]


def test_mpd_bad_inputs(tmp_path: Path):
    archive = tmp_path / "archive"
    tiny_image(archive / "r.png")
    table = tmp_path / "scores.csv"
    table.write_text("distorted,reference,score\nmissing.png,r.png,1.0\n")
    with pytest.raises(ImageReadError) as exc:
        write_mpd_manifest(archive, table, tmp_path / "m.csv")
    assert str(exc.value) == f"MPD: 'missing.png' (scores.csv line 2) is not under {archive}; check --root"
    assert not (tmp_path / "m.csv").exists()
    (tmp_path / "m.csv").write_text("reference,distorted,score\narchive/r.png,archive/gone.png,1\n")
    with pytest.raises(ImageReadError) as exc:
        load_iqa_dataset("mpd", tmp_path / "m.csv")
    assert str(exc.value) == "MPD: image archive/gone.png listed in m.csv line 2 is missing; fix the path or the manifest"


def test_unknown_dataset_name_lists_the_known_ones(tmp_path: Path):
    with pytest.raises(KeyError) as exc:
        load_iqa_dataset("csiq", tmp_path)
    assert str(exc.value) == (
        "unknown IQA dataset 'csiq'; known IQA datasets: kadid10k, live, live-realigned, mpd, mpd-pairs, pcmp, tid2013"
    )
