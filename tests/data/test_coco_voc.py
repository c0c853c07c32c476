"""COCO and VOC detection loaders on tiny fake trees in the released layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mocodec.data.coco import ObjectBox, coco_samples, find_coco
from mocodec.data.voc import VOC_TO_COCO, find_voc, parse_voc_xml, voc_samples
from mocodec.errors import ConfigError


def write_image(path: Path, size=(64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 30, 200)).save(path)
    return path


def coco_tree(root: Path, present=(1, 2)) -> Path:
    """annotations/instances_val2017.json + val2017/: image 1 (a person, a crowd), 2 (no objects), 3 (listed, absent)."""
    instances = {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 64, "height": 48} for i in (1, 2, 3)],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [1.5, 2, 30, 20.25], "iscrowd": 0, "area": 607.5},
            {"id": 11, "image_id": 1, "category_id": 18, "bbox": [0, 0, 10, 10], "iscrowd": 1, "area": 100},
            {"id": 12, "image_id": 3, "category_id": 18, "bbox": [5, 5, 10, 10], "iscrowd": 0, "area": 100},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(instances))
    for i in present:
        write_image(root / "val2017" / f"{i:012d}.jpg")
    return root


def test_coco_loader_reads_boxes_crowds_and_empty_images(tmp_path):
    annotations, images = find_coco(coco_tree(tmp_path))
    missing: list = []
    samples = coco_samples(annotations, images, missing=missing)
    assert [s.id for s in samples] == ["1", "2"]
    assert samples[0].path == tmp_path / "val2017" / "000000000001.jpg"
    assert samples[0].target == (ObjectBox((1.5, 2.0, 30.0, 20.25), "person"), ObjectBox((0.0, 0.0, 10.0, 10.0), "dog", ignore=True))
    assert samples[1].target == ()  # an image without objects still counts: every detection on it is a false positive
    assert missing == [(str(tmp_path / "val2017" / "000000000003.jpg"), "listed in instances_val2017.json but absent")]


def test_coco_absent_image_raises_without_a_missing_list(tmp_path):
    annotations, images = find_coco(coco_tree(tmp_path))
    with pytest.raises(ConfigError, match=r"image .*000000000003.jpg is listed in instances_val2017.json but absent; place it there"):
        coco_samples(annotations, images)


def test_find_coco_accepts_the_json_and_an_image_folder_elsewhere(tmp_path):
    coco_tree(tmp_path / "coco")
    elsewhere = tmp_path / "pictures"
    elsewhere.mkdir()
    json_path = tmp_path / "coco" / "annotations" / "instances_val2017.json"
    assert find_coco(json_path) == (json_path, tmp_path / "coco" / "val2017")
    assert find_coco(tmp_path / "coco", images=elsewhere) == (json_path, elsewhere)


def test_coco_bad_input_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        find_coco(tmp_path)
    assert str(err.value) == f"no COCO annotations under {tmp_path}: expected {tmp_path / 'annotations' / 'instances_val2017.json'}"
    (tmp_path / "annotations").mkdir()
    for split in ("train2017", "test-dev2017"):
        (tmp_path / "annotations" / f"instances_{split}.json").write_text("{}")
    with pytest.raises(ConfigError, match="several COCO annotation files"):
        find_coco(tmp_path)
    broken = tmp_path / "annotations" / "instances_train2017.json"
    (tmp_path / "train2017").mkdir()
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match=r"COCO annotation file .* is not valid JSON"):
        coco_samples(broken, tmp_path / "train2017")
    broken.write_text(json.dumps({"images": []}))
    with pytest.raises(ConfigError, match="is not a COCO instances file"):
        coco_samples(broken, tmp_path / "train2017")
    with pytest.raises(ConfigError, match=r"COCO image folder .*test-dev2017 does not exist"):
        find_coco(tmp_path / "annotations" / "instances_test-dev2017.json")
    with pytest.raises(ConfigError, match=r"COCO annotation file .*instances_val2017.json does not exist"):
        coco_samples(tmp_path / "annotations" / "instances_val2017.json", tmp_path / "train2017")


def test_coco_annotation_with_an_unknown_category_id_is_an_error(tmp_path):
    root = coco_tree(tmp_path)
    path = root / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="annotation 10 in .* has category id 99, not among its categories"):
        coco_samples(path, root / "val2017", missing=[])


VOC_XML = """<annotation>
  <folder>VOC2007</folder><filename>{id}.jpg</filename>
  <size><width>64</width><height>48</height><depth>3</depth></size>
  {objects}
</annotation>"""
VOC_OBJECT = """<object><name>{name}</name><pose>Left</pose><truncated>0</truncated><difficult>{difficult}</difficult>
  <bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"""


def voc_tree(root: Path, objects: dict[str, list[tuple[str, tuple[int, int, int, int], int]]], present=None, split="test") -> Path:
    """VOCdevkit/VOC2007 with Annotations/, JPEGImages/ and ImageSets/Main/<split>.txt."""
    voc = root / "VOCdevkit" / "VOC2007"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    for image_id, objs in objects.items():
        body = "".join(VOC_OBJECT.format(name=n, box=b, difficult=d) for n, b, d in objs)
        (voc / "Annotations" / f"{image_id}.xml").write_text(VOC_XML.format(id=image_id, objects=body))
        if present is None or image_id in present:
            write_image(voc / "JPEGImages" / f"{image_id}.jpg")
    (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in objects))
    (voc / "ImageSets" / "Main" / "dog_test.txt").write_text("")  # per-class lists sit beside the split files
    return voc


def test_voc_loader_converts_boxes_maps_classes_and_marks_difficult(tmp_path):
    voc = voc_tree(
        tmp_path,
        {
            "000001": [("dog", (48, 240, 195, 371), 0), ("person", (8, 12, 352, 498), 1)],
            "000002": [("tvmonitor", (1, 1, 64, 48), 0)],
            "000003": [("sofa", (3, 4, 5, 6), 0)],
        },
        present={"000001", "000002"},
    )
    missing: list = []
    samples = voc_samples(tmp_path / "VOCdevkit", "test", missing=missing)  # the VOCdevkit folder finds its only VOC2007
    assert [s.id for s in samples] == ["000001", "000002"]
    # 1-based inclusive corners: (xmin, ymin, xmax, ymax) = (48, 240, 195, 371) covers x in [47, 195], w = 195 - 48 + 1.
    assert samples[0].target == (ObjectBox((47.0, 239.0, 148.0, 132.0), "dog"), ObjectBox((7.0, 11.0, 345.0, 487.0), "person", ignore=True))
    # A box from pixel 1 to the last pixel covers the whole 64 x 48 image.
    assert samples[1].target == (ObjectBox((0.0, 0.0, 64.0, 48.0), "tv"),)
    assert missing == [(str(voc / "JPEGImages" / "000003.jpg"), "listed in test.txt but absent")]


def test_voc_to_coco_mapping_covers_voc_and_lands_on_coco_names():
    """All 20 VOC classes map onto COCO's 80 (ultralytics' coco.yaml); six of them are renamed."""
    from mocodec.tasks.detectors import coco80_names

    assert sorted(VOC_TO_COCO) == sorted(
        [
            "aeroplane",
            "bicycle",
            "bird",
            "boat",
            "bottle",
            "bus",
            "car",
            "cat",
            "chair",
            "cow",
            "diningtable",
            "dog",
            "horse",
            "motorbike",
            "person",
            "pottedplant",
            "sheep",
            "sofa",
            "train",
            "tvmonitor",
        ]
    )
    assert set(VOC_TO_COCO.values()) <= set(coco80_names())
    assert {v: c for v, c in VOC_TO_COCO.items() if v != c} == {
        "aeroplane": "airplane",
        "diningtable": "dining table",
        "motorbike": "motorcycle",
        "pottedplant": "potted plant",
        "sofa": "couch",
        "tvmonitor": "tv",
    }


def test_voc_bad_input_errors(tmp_path):
    voc = voc_tree(tmp_path, {"000001": [("unicorn", (1, 1, 5, 5), 0)], "000002": []})
    with pytest.raises(ConfigError) as err:
        voc_samples(voc, "test", missing=[])
    assert str(err.value) == f"unknown VOC class 'unicorn' in {voc / 'Annotations' / '000001.xml'}; VOC classes: {', '.join(VOC_TO_COCO)}"
    with pytest.raises(ConfigError) as err:
        voc_samples(voc, "trainval", missing=[])
    assert str(err.value) == (
        f"VOC split file {voc / 'ImageSets' / 'Main' / 'trainval.txt'} does not exist "
        "(splits present: test); choose one with --dataset-option split=NAME"
    )
    (voc / "Annotations" / "000002.xml").unlink()
    with pytest.raises(ConfigError, match=r"VOC annotation .*000002.xml does not exist; the split lists it"):
        parse_voc_xml(voc / "Annotations" / "000002.xml")
    (voc / "Annotations" / "000002.xml").write_text("<annotation><object>")
    with pytest.raises(ConfigError, match=r"VOC annotation .*000002.xml is not valid XML"):
        parse_voc_xml(voc / "Annotations" / "000002.xml")
    with pytest.raises(ConfigError, match=r"no VOC layout under .*: expected .*Annotations"):
        find_voc(tmp_path / "VOCdevkit" / "VOC2007" / "JPEGImages")
