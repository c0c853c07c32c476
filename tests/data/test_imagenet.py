"""ImageNet loaders on tiny fake trees of both released layouts, unlabeled folders and the embedded tiles."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mocodec.data.imagenet import embedded_samples, imagenet_samples, imagenet_synsets, read_loc_solution
from mocodec.errors import ConfigError
from mocodec.tasks.classification import imagenet_class_names


def _image(path, size=(12, 10), value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


def test_synsets_are_the_sorted_ilsvrc_list():
    synsets = imagenet_synsets()
    # ILSVRC-2012: class 0 is n01440764 (tench), class 999 is n15075141 (toilet tissue)
    assert (len(synsets), synsets[0], synsets[999]) == (1000, "n01440764", "n15075141")
    assert imagenet_class_names()[0] == "tench" and imagenet_class_names()[999] == "toilet tissue"


def test_imagefolder_layout_maps_synsets_through_the_full_list(tmp_path):
    """A subset of the classes keeps the full-list indices (ImageFolder alone would number them 0, 1, 2)."""
    _image(tmp_path / "n01440764" / "ILSVRC2012_val_00000293.JPEG")
    _image(tmp_path / "n01443537" / "b.png")
    _image(tmp_path / "n15075141" / "c.png")
    (tmp_path / "n15075141" / "notes.txt").write_text("not an image")
    samples = imagenet_samples(tmp_path)
    assert [(s.id, s.target) for s in samples] == [
        ("n01440764/ILSVRC2012_val_00000293.JPEG", 0),
        ("n01443537/b.png", 1),
        ("n15075141/c.png", 999),
    ]
    assert samples[0].path == tmp_path / "n01440764" / "ILSVRC2012_val_00000293.JPEG"


def test_a_class_split_keeps_every_nth_class_of_the_sorted_synsets(tmp_path):
    """classes=0/2 and 1/2 are disjoint and cover the classes (a codec trains on one half, a judge uses the other)."""
    for synset in ("n01440764", "n01443537", "n01484850", "n01491361", "n15075141"):
        _image(tmp_path / synset / "a.png")
        _image(tmp_path / synset / "b.png")
    even, odd = (imagenet_samples(tmp_path, classes=c) for c in ("0/2", "1/2"))
    assert sorted({s.id.split("/")[0] for s in even}) == ["n01440764", "n01484850", "n15075141"]
    assert sorted({s.id.split("/")[0] for s in odd}) == ["n01443537", "n01491361"]
    assert len(even) + len(odd) == len(imagenet_samples(tmp_path)) == 10
    with pytest.raises(ConfigError, match=r"^cannot read shard 'half'; write I/N"):
        imagenet_samples(tmp_path, classes="half")
    with pytest.raises(ConfigError, match=r"has no classes$"):
        imagenet_samples(tmp_path, layout="unlabeled", classes="0/2")


def test_class_name_folders_need_the_explicit_layout(tmp_path):
    _image(tmp_path / "tench" / "a.png")
    _image(tmp_path / "great_white_shark" / "b.png")
    names = imagenet_class_names()
    assert all(s.target is None for s in imagenet_samples(tmp_path))  # auto: not synsets, so unlabeled
    samples = imagenet_samples(tmp_path, layout="imagefolder", class_names=names)
    assert [(s.id, s.target) for s in samples] == [("great_white_shark/b.png", 2), ("tench/a.png", 0)]


def test_unknown_or_ambiguous_class_folders_are_an_error(tmp_path):
    _image(tmp_path / "kitten" / "a.png")
    _image(tmp_path / "n01440764" / "b.png")
    with pytest.raises(ConfigError) as err:
        imagenet_samples(tmp_path, layout="imagefolder", class_names=imagenet_class_names())
    assert str(err.value) == (
        f"class folder(s) kitten in {tmp_path} are neither ImageNet synsets (n01440764, ...) nor the model's class names; "
        "rename them or use --dataset-option layout=unlabeled"
    )
    (tmp_path / "kitten").rename(tmp_path / "cat")  # a name two classes share says nothing: it needs the synset
    with pytest.raises(ConfigError, match=r"^class folder\(s\) cat in "):
        imagenet_samples(tmp_path, layout="imagefolder", class_names=["cat", "dog", "cat"])
    assert [s.target for s in imagenet_samples(tmp_path, layout="imagefolder", class_names=["cat", "dog"])] == [0, 0]


def test_loc_csv_layout_skips_and_counts_absent_images(tmp_path):
    val = tmp_path / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    _image(val / "ILSVRC2012_val_00000001.JPEG")
    _image(val / "ILSVRC2012_val_00000002.JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000001,n01751748 111 0 499 374 n01751748 0 0 50 50\n"
        "ILSVRC2012_val_00000002,n15075141 1 2 3 4\n"
        "ILSVRC2012_val_00000003,n01440764 1 2 3 4\n"
    )
    with pytest.warns(
        UserWarning, match=r"^1 of the 3 images listed in LOC_val_solution.csv are absent under .*; evaluating the 2 present$"
    ):
        samples = imagenet_samples(tmp_path)
    # n01751748 (sea snake) is class 65 of the sorted synset list
    assert [(s.id, s.target) for s in samples] == [("ILSVRC2012_val_00000001", 65), ("ILSVRC2012_val_00000002", 999)]
    assert samples[1].path == val / "ILSVRC2012_val_00000002.JPEG"


def test_loc_csv_errors(tmp_path):
    bad = tmp_path / "LOC_val_solution.csv"
    bad.write_text("id,label\nx,n01440764\n")
    with pytest.raises(ConfigError, match=r"has no ImageId,PredictionString header; is it the ILSVRC LOC_val_solution.csv\?$"):
        read_loc_solution(bad)
    bad.write_text("ImageId,PredictionString\nx,tench 1 2 3 4\n")
    with pytest.raises(ConfigError, match=r"line 2: PredictionString does not start with a synset \(n01440764 \.\.\.\)$"):
        read_loc_solution(bad)
    bad.write_text("ImageId,PredictionString\nx,n01440764 1 2 3 4\n")
    with pytest.raises(ConfigError, match=r"^none of the 1 images listed in .* are under .* \(as <ImageId>.JPEG\)$"):
        imagenet_samples(tmp_path)


def test_unlabeled_and_empty_folders(tmp_path):
    _image(tmp_path / "photos" / "2019" / "a.jpg")
    _image(tmp_path / "photos" / "b.png")
    samples = imagenet_samples(tmp_path / "photos")
    assert [(s.id, s.target) for s in samples] == [("2019/a.jpg", None), ("b.png", None)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^dataset folder .*empty holds no images \(.png, .jpg, .jpeg, .webp, ...\)$"):
        imagenet_samples(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"^unknown ImageNet layout 'coco'; use one of auto, imagefolder, loc, unlabeled$"):
        imagenet_samples(tmp_path, layout="coco")


def test_embedded_tiles_are_written_once_and_lossless(tmp_path, astronaut):
    samples = embedded_samples(tile=256, stride=128, folder=tmp_path)
    # 256 px tiles every 128 px: astronaut 512x512 -> 3x3, chelsea 300x451 -> 1x2, coffee 400x600 -> 2x3,
    # rocket 427x640 -> 2x4, stereo_motorcycle 500x741 -> 2x4, clock 300x400 -> 1x2
    assert len(samples) == 9 + 2 + 6 + 8 + 8 + 2
    assert samples[0].id == "embedded/astronaut_00" and samples[0].target is None
    tile = np.array(Image.open(samples[4].path))  # astronaut row 1, column 1
    np.testing.assert_array_equal(tile, astronaut[128:384, 128:384])
    mtime = samples[0].path.stat().st_mtime_ns
    assert embedded_samples(tile=256, stride=128, folder=tmp_path) == samples
    assert samples[0].path.stat().st_mtime_ns == mtime
