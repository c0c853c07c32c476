"""The decoded crops a sweep keeps for the report page: which images, bounded, resumed, pruned, cleared, merged from shards."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from unittest.mock import Mock

import numpy as np
import pytest
import torch
from PIL import Image

import mocodec.evaluation.sweep as sweep
from mocodec.codecs import load_codec
from mocodec.data.io import read_image
from mocodec.errors import ConfigError
from mocodec.evaluation.coding import code_image, quantize_8bit
from mocodec.evaluation.crops import (
    CropKeeper,
    centre_box,
    clear_crops,
    crops_folder,
    disagreement,
    merge_crops,
    read_index,
    selection_metrics,
)
from mocodec.evaluation.plan import plan_curves
from mocodec.evaluation.shards import Shard
from mocodec.evaluation.sweep import FidelityOnly, evaluate, merge_files

QUALITIES = "10,40,80"


@pytest.fixture
def photos(tmp_path, astronaut) -> Path:
    """Five small crops of a photograph (smaller than a crop: each is kept whole)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(astronaut[60 * i : 60 * i + 40, 90 + 30 * i : 146 + 30 * i]).save(folder / f"p{i}.png")
    return folder


def _pixels(folder: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO((folder / name).read_bytes())))


def test_crops_folder_and_box():
    assert crops_folder("out/task.json") == Path("out/task.crops") and crops_folder("out/task") == Path("out/task.crops")
    assert centre_box(500, 375, 192) == (154, 91, 192, 192) and centre_box(40, 56, 192) == (0, 0, 40, 56)


def test_disagreement_by_hand():
    # common range [0.2, 0.4]: at 0.2 the first curve is half-way (log-rate) between 0 and 1, the second 1; at 0.4 both 1
    assert disagreement({"a": [(0.1, 0.0), (0.4, 1.0)], "b": [(0.2, 1.0), (0.8, 1.0)]}) == pytest.approx(0.25)
    # no common range: every rate, each curve held flat beyond its ends: (5 + 4 + 4) / 3
    assert disagreement({"a": [(0.1, 0.0), (0.2, 1.0)], "b": [(0.4, 5.0)]}) == pytest.approx(13 / 3)
    assert disagreement({"a": [(0.1, 0.0), (0.2, 1.0)]}) == 0.0  # one curve disagrees with nobody
    assert disagreement({"a": [(0.1, math.nan)], "b": [(0.2, 1.0)]}) == 0.0


def _offer(keeper: CropKeeper, image_id: str, spread: float) -> None:
    """An image whose two curves differ by ``spread`` in agreement at every rate."""
    original = torch.rand(3, 12, 16)
    decoded = []
    for curve, value in (("a", 1.0), ("b", 1.0 - spread)):
        for point, bpp in (("1", 0.2), ("2", 0.5)):
            record = {"id": image_id, "point": point, "bpp": bpp, "agreement": value}
            decoded.append((curve, point, torch.randint(0, 256, (3, 12, 16), dtype=torch.uint8), record, {"codec": curve}))
    keeper.offer(image_id, original, decoded, complete=True)


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4, 5], [5, 3, 1, 0, 4, 2]])
def test_the_keeper_keeps_the_images_that_disagree_most_whatever_the_order(tmp_path, order):
    spreads = [0.1, 0.9, 0.3, 0.9, 0.0, 0.5]
    keeper = CropKeeper(tmp_path / "r.crops", keep=2, pinned=["img4"], selection=["agreement"])
    for i in order:
        _offer(keeper, f"img{i}", spreads[i])
    keeper.save()
    index = read_index(tmp_path / "r.crops")
    assert list(index["images"]) == ["img4", "img1", "img3"]  # pinned first, then the best two (ties by id)
    assert index["images"]["img1"]["score"] == [pytest.approx(0.9)]
    files = {p.name for p in (tmp_path / "r.crops").iterdir()}
    assert files == {"index.json"} | {f for image in index["images"].values() for f in [image["original"]]} | {
        p["file"] for image in index["images"].values() for points in image["points"].values() for p in points.values()
    }
    assert len(files) == 1 + 3 * 5  # the original and four decoded crops of each kept image, nothing of the others
    # a better image evicts the worst one; its files go at the next save
    _offer(keeper, "img9", 1.0)
    keeper.save()
    assert list(read_index(tmp_path / "r.crops")["images"]) == ["img4", "img9", "img1"]
    assert len(list((tmp_path / "r.crops").iterdir())) == 1 + 3 * 5


def test_a_sweep_keeps_the_crops_of_the_decoded_files(tmp_path, photos, monkeypatch):
    out = tmp_path / "rd.json"
    curves = plan_curves(["jpeg"], [QUALITIES])
    evaluate(FidelityOnly(), curves, out, photos, fidelity=("psnr-rgb",), keep_crops=2)
    folder = crops_folder(out)
    index = read_index(folder)
    assert (index["keep"], index["crop_size"], index["selection"]) == (2, 192, ["psnr-rgb"])
    assert len(index["images"]) == 2
    for image_id, image in index["images"].items():
        assert list(image["points"]["jpeg"]) == ["10", "40", "80"]
        x, info = read_image(photos / image_id)
        assert np.array_equal(_pixels(folder, image["original"]), x.mul(255).round().byte().permute(1, 2, 0).numpy())
        decoded = quantize_8bit(code_image(load_codec("jpeg", 40), x, info).x_hat)
        assert np.array_equal(
            _pixels(folder, image["points"]["jpeg"]["40"]["file"]), decoded.mul(255).round().byte().permute(1, 2, 0).numpy()
        )
    # one curve disagrees with no other: every score is 0, and the first ids are kept
    assert list(index["images"]) == ["p0.png", "p1.png"]

    # resumed: nothing coded again, the crops stay; a curve added on resume gets crops of the kept images only
    coded = Mock(wraps=sweep.code_image)
    monkeypatch.setattr(sweep, "code_image", coded)
    evaluate(FidelityOnly(), curves, out, photos, fidelity=("psnr-rgb",), keep_crops=2)
    assert coded.call_count == 0 and read_index(folder) == index
    evaluate(FidelityOnly(), plan_curves(["jpeg,webp"], [QUALITIES]), out, photos, fidelity=("psnr-rgb",), keep_crops=2)
    grown = read_index(folder)
    assert list(grown["images"]) == list(index["images"])
    assert all(list(image["points"]) == ["jpeg", "webp"] for image in grown["images"].values())

    # a new run (--force) without crops clears the folder: no stale crops beside a new results file
    (folder / "someone-elses.txt").write_text("kept")  # files the index does not name are not the sweep's to delete
    evaluate(FidelityOnly(), curves, out, photos, fidelity=("psnr-rgb",), force=True)
    assert [p.name for p in folder.iterdir()] == ["someone-elses.txt"]


def test_crops_of_a_point_whose_codec_changed_are_dropped(tmp_path):
    keeper = CropKeeper(tmp_path / "r.crops", keep=1, selection=["agreement"])
    _offer(keeper, "img0", 0.5)
    keeper.prune([{"name": "a", "points": {"1": {"codec": "a"}, "2": {"codec": "retrained"}}}, {"name": "b", "points": {}}])
    assert {c: list(p) for c, p in keeper.kept["img0"].points.items()} == {"a": ["1"], "b": ["1", "2"]}


def test_pinned_images_must_exist(tmp_path, photos):
    with pytest.raises(ConfigError, match=r"^--keep-images: no image 'nope.png' in the dataset; name images by their ids"):
        evaluate(FidelityOnly(), plan_curves(["jpeg"], ["50"]), tmp_path / "r.json", photos, keep_images=["nope.png"])


def test_shards_keep_what_one_process_keeps(tmp_path, photos):
    curves = plan_curves(["jpeg,webp"], ["10,60"])
    evaluate(FidelityOnly(), curves, tmp_path / "one.json", photos, fidelity=("psnr-rgb",), keep_crops=2, keep_images=["p4.png"])
    parts = []
    for i in range(2):
        part = tmp_path / f"part{i}.json"
        evaluate(FidelityOnly(), curves, part, photos, fidelity=("psnr-rgb",), shard=Shard(i, 2), keep_crops=2, keep_images=["p4.png"])
        parts.append(part)
    (tmp_path / "merged.json").write_text(json.dumps(merge_files(parts)))
    assert merge_crops(parts, tmp_path / "merged.json") == 3
    one, merged = read_index(crops_folder(tmp_path / "one.json")), read_index(crops_folder(tmp_path / "merged.json"))
    assert merged == one
    for image in merged["images"].values():
        assert (crops_folder(tmp_path / "merged.json") / image["original"]).read_bytes() == (
            crops_folder(tmp_path / "one.json") / image["original"]
        ).read_bytes()


def test_selection_metrics():
    assert selection_metrics({"metrics": {"psnr-rgb": {}, "agreement": {"reference": False}}, "fidelity": ["psnr-rgb"]}) == [
        "agreement",
        "psnr-rgb",
    ]
    assert selection_metrics({"metrics": {}, "fidelity": []}) == []


def test_an_index_naming_a_file_outside_its_folder_is_no_index(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not a crop")
    folder = tmp_path / "r.crops"
    folder.mkdir()
    image = {"score": [], "pinned": False, "size": [1, 1], "box": [0, 0, 1, 1], "original": "../secret.txt", "points": {}, "names": {}}
    index = {"mocodec": "crops", "version": 1, "crop_size": 192, "keep": 1, "selection": [], "images": {"a": image}}
    (folder / "index.json").write_text(json.dumps(index))
    assert read_index(folder) is None  # so no page inlines it and no sweep deletes it
    clear_crops(folder)
    assert secret.read_text() == "not a crop"
