"""Detection task: COCO mAP against hand-made boxes, a tiny random YOLO end to end, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mocodec.data.coco import ObjectBox
from mocodec.errors import ConfigError, WeightsError
from mocodec.tasks import TASKS, create_task
from mocodec.tasks.detection import coco_map, detection_rows
from mocodec.tasks.detectors import Detections

# ---------------------------------------------------------------------------- mAP against hand-computed values
# Ground-truth rows [x, y, w, h, class, ignore]; detection rows [x, y, w, h, score, class].
# COCO's AP is the mean over 101 recall thresholds 0, 0.01, ..., 1 of the best precision at
# recall >= the threshold, averaged over classes with labels and over IoU 0.50, 0.55, ..., 0.95.
BOX = [0, 0, 100, 100]
FAR = [200, 200, 50, 50]
MAP_CASES = {
    "detections equal the labels": ([[[*BOX, 0, 0]]], [[[*BOX, 0.9, 0]]], 1.0, 1.0),
    # Ranked: hit (precision 1, recall 1/2), then a false positive: precision 1 up to recall 0.5,
    # nothing beyond, so 51 of the 101 thresholds (0.00 ... 0.50) score 1: AP = 51/101 at every IoU.
    "one hit, one miss, one false positive": (
        [[[*BOX, 0, 0], [*FAR, 0, 0]]],
        [[[*BOX, 0.9, 0], [400, 400, 30, 30, 0.8, 0]]],
        51 / 101,
        51 / 101,
    ),
    # IoU of a 100 x 78 box inside the 100 x 100 label = 0.78: a hit at IoU 0.50 ... 0.75 (6 of 10 thresholds).
    "IoU 0.78": ([[[*BOX, 0, 0]]], [[[0, 0, 100, 78, 0.9, 0]]], 0.6, 1.0),
    # A detection on an ignored region (COCO crowd, VOC difficult) is neither a hit nor a false positive ...
    "ignored region": ([[[*BOX, 0, 0], [*FAR, 0, 1]]], [[[*BOX, 0.5, 0], [*FAR, 0.9, 0]]], 1.0, 1.0),
    # ... without the region it is a false positive ranked first: precision 1/2 at every recall: AP = 0.5.
    "same detections, no region": ([[[*BOX, 0, 0]]], [[[*BOX, 0.5, 0], [*FAR, 0.9, 0]]], 0.5, 0.5),
    # A box of the wrong class finds nothing; class 3 has no labels, so it is left out of the mean.
    "wrong class": ([[[*BOX, 0, 0]]], [[[*BOX, 0.9, 3]]], 0.0, 0.0),
    # Two classes: class 0 found (AP 1), class 1 missed (AP 0): mean 0.5.
    "mean over classes": ([[[*BOX, 0, 0], [*FAR, 1, 0]]], [[[*BOX, 0.9, 0]]], 0.5, 0.5),
    # The label is on the second image, the detection on the first: a miss and a false positive.
    "boxes stay on their image": ([[], [[*BOX, 0, 0]]], [[[*BOX, 0.9, 0]], []], 0.0, 0.0),
    "nothing detected": ([[[*BOX, 0, 0]], []], [[], []], 0.0, 0.0),
}


@pytest.mark.parametrize("case", MAP_CASES)
def test_coco_map_matches_hand_computed_values(case):
    ground_truth, detections, expected_map, expected_map50 = MAP_CASES[case]
    map_all, map50 = coco_map(ground_truth, detections)
    assert map_all == pytest.approx(expected_map, abs=1e-9)
    assert map50 == pytest.approx(expected_map50, abs=1e-9)


def test_coco_map_is_undefined_without_labels():
    assert coco_map([[], []], [[[*BOX, 0.5, 0]], []]) == (None, None)
    assert coco_map([[[*BOX, 0, 1]]], [[[*BOX, 0.5, 0]]]) == (None, None)  # only ignored regions


def test_detection_rows_are_coco_boxes_rounded_for_json():
    det = Detections(np.array([[10.004, 20.0, 30.5, 60.25]], np.float32), np.array([0.123456], np.float32), np.array([7]))
    assert detection_rows(det) == [[10.0, 20.0, 20.5, 40.25, 0.12346, 7]]
    assert detection_rows(Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))) == []


# ---------------------------------------------------------------------------- the task with a tiny random YOLO


@pytest.fixture(scope="module")
def task():
    """The registry's tiny configuration: yolo11n.yaml at random init, 64 px, every box kept (conf 1e-9, 5 per image)."""
    return create_task("detection", **TASKS.meta("detection")["test_kwargs"])


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    import skimage.data

    crops = [skimage.data.astronaut()[:96, :128], skimage.data.chelsea()[:96, :128]]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255)


def test_registry_entry_builds_offline_and_finds_boxes(task, photos):
    assert task.identity() == {
        "name": "detection",
        "model": "yolo11n",
        "weights": "random",
        "conf": 1e-9,
        "iou": 0.7,
        "max_det": 5,
        "imgsz": 64,
        "agreement_conf": 0.0,
    }
    assert task.detector.names[:3] == ("person", "bicycle", "car")  # COCO's names replace the yaml's placeholders
    records = task.evaluate(photos, photos, [None, None])
    assert len(records) == 2 and all(len(r["detections"]) == 5 for r in records)
    assert json.loads(json.dumps(records)) == records
    assert records[0]["ground_truth"] is None


def test_identical_images_agree_fully_and_compare_equals_evaluate(task, photos):
    decoded = photos.flip(-1)
    via_reference = task.compare(task.reference(photos), decoded, None)
    assert via_reference == task.evaluate(photos, decoded)
    same = task.summarize(task.evaluate(photos, photos))
    assert same == {"map": None, "map50": None, "agreement": 1.0, "agreement50": 1.0, "reference-boxes": 5.0}


def test_summarize_scores_labels_with_the_detector_class_indices(task, photos):
    """Records carry labels as detector class indices; mAP equals coco_map on those rows."""
    targets = [(ObjectBox((0.0, 0.0, 128.0, 96.0), "person"),), (ObjectBox((10.0, 10.0, 50.0, 40.0), "cat", ignore=True),)]
    records = task.evaluate(photos, photos, targets)
    assert records[0]["ground_truth"] == [[0.0, 0.0, 128.0, 96.0, 0, 0]]
    assert records[1]["ground_truth"] == [[10.0, 10.0, 50.0, 40.0, 15, 1]]  # cat is COCO class 15
    expected = coco_map([r["ground_truth"] for r in records], [r["detections"] for r in records])
    summary = task.summarize(records)
    assert (summary["map"], summary["map50"]) == expected
    with pytest.raises(ConfigError) as err:
        task.evaluate(photos[:1], photos[:1], [(ObjectBox((0, 0, 1, 1), "unicorn"),)])
    assert str(err.value) == (
        "class(es) unicorn of the dataset are not among the detector's 80 classes "
        "(person, bicycle, car, motorcycle, ...); rename them in the annotations or use a detector trained on them"
    )


def write_coco(root: Path, classes=("person", "cat")) -> Path:
    """A COCO tree of two photo crops with hand-placed boxes, and one listed image that is absent."""
    import skimage.data

    (root / "val2017").mkdir(parents=True)
    Image.fromarray(skimage.data.astronaut()[:96, :128]).save(root / "val2017" / "a.png")
    Image.fromarray(skimage.data.chelsea()[:96, :128]).save(root / "val2017" / "b.png")
    doc = {
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}, {"id": 3, "file_name": "gone.png"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 5, 100, 90], "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 17, "bbox": [0, 0, 128, 96], "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": classes[0]}, {"id": 17, "name": classes[1]}],
    }
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    return root


def test_dataset_recognises_coco_voc_and_plain_folders(task, tmp_path):
    coco = write_coco(tmp_path / "coco")
    with pytest.warns(UserWarning, match=r"1 labelled image\(s\) are absent \(first: .*gone.png\); evaluating the 2 present"):
        samples = task.dataset(coco)
    assert [(s.id, s.target[0].category) for s in samples] == [("1", "person"), ("2", "cat")]
    plain = task.dataset(coco / "val2017")
    assert [(s.id, s.target) for s in plain] == [("a.png", None), ("b.png", None)]
    with pytest.raises(ConfigError, match="unknown detection layout 'yolo'; use one of auto, coco, voc, unlabeled"):
        task.dataset(coco, layout="yolo")
    with (
        pytest.raises(ConfigError, match=r"class\(es\) zebra-crossing of the dataset are not among the detector's 80 classes"),
        pytest.warns(UserWarning, match="are absent"),
    ):
        task.dataset(write_coco(tmp_path / "other", ("person", "zebra-crossing")))


def test_default_dataset_is_the_embedded_photos(task, tmp_path, monkeypatch):
    monkeypatch.setenv("MOCODEC_CACHE", str(tmp_path))
    samples = task.dataset()
    assert [s.id for s in samples] == [
        "embedded/astronaut",
        "embedded/chelsea",
        "embedded/coffee",
        "embedded/rocket",
        "embedded/stereo_motorcycle",
        "embedded/clock",
    ]
    assert all(s.path.is_file() and s.target is None for s in samples)


# ---------------------------------------------------------------------------- models that cannot be loaded


def test_published_yolo_offline_names_the_file_and_the_flag():
    from ultralytics.utils import SETTINGS

    with pytest.raises(WeightsError) as err:
        create_task("detection", model="yolo11n")
    target = Path(SETTINGS["weights_dir"]) / "yolo11n.pt"
    assert str(err.value) == f"cannot download yolo11n.pt (ConnectionError; offline?); place it at {target}, or pass --weights PATH"


def test_unknown_damaged_and_missing_detector_weights(tmp_path):
    with pytest.raises(WeightsError, match="ultralytics publishes no model 'yolo99q'; detectors it does: yolo11l, yolo11m, yolo11n"):
        create_task("detection", model="yolo99q")
    with pytest.raises(ConfigError, match="ultralytics has no architecture yolo99q.yaml; use a model name such as yolo11n or yolov8s"):
        create_task("detection", model="yolo99q.yaml")
    damaged = tmp_path / "best.pt"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=rf"^{damaged} is not an ultralytics checkpoint \("):
        create_task("detection", weights=str(damaged))
    with pytest.raises(WeightsError) as err:
        create_task("detection", weights=str(tmp_path / "nope.pt"))
    assert str(err.value) == f"detector weights {tmp_path / 'nope.pt'} do not exist; check --weights"
    with pytest.raises(ConfigError, match="yolo11n-cls.yaml is an ultralytics classify model; the detection task needs a detect model"):
        create_task("detection", model="yolo11n-cls.yaml")


def test_torchvision_faster_rcnn_by_name(photos):
    task = create_task(
        "detection", model="fasterrcnn_mobilenet_v3_large_320_fpn", pretrained=False, conf=0.0, max_det=3, agreement_conf=0.0
    )
    assert len(task.detector.names) == 91 and task.detector.names[1] == "person" and task.class_index["cat"] == 17
    records = task.evaluate(photos, photos)
    assert [len(r["detections"]) for r in records] == [3, 3]
    assert task.summarize(records)["agreement"] == 1.0
    with pytest.raises(
        WeightsError,
        match=r"cannot download torchvision fasterrcnn_mobilenet_v3_large_320_fpn weights from "
        r"https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth "
        r"\(\w+\); place that file at .*, or pass --weights PATH",
    ):
        create_task("detection", model="fasterrcnn_mobilenet_v3_large_320_fpn")


# ---------------------------------------------------------------------------- through the eval-task sweep


def test_eval_task_sweep_runs_detection_end_to_end(task, tmp_path):
    from mocodec.evaluation.plan import plan_curves
    from mocodec.evaluation.sweep import evaluate

    coco = write_coco(tmp_path / "coco")
    out = tmp_path / "detection.json"
    with pytest.warns(UserWarning, match="are absent"):
        results = evaluate(task, plan_curves(["jpeg"], ["jpeg=10,90"]), out, coco)
    doc = json.loads(out.read_text())
    entry = doc["entries"][0]
    assert doc["task"] == task.identity() and doc["dataset"]["num_samples"] == 2
    assert list(doc["metrics"]) == ["psnr-rgb", "ms-ssim", "map", "map50", "agreement", "agreement50", "reference-boxes"]
    assert doc["metrics"]["reference-boxes"]["reference"] is True
    assert entry["results"]["quality"] == [10, 90] and len(entry["per_image"]) == 4
    for quality, record_group in ((10, entry["per_image"][:2]), (90, entry["per_image"][2:])):
        assert {r["quality"] for r in record_group} == {quality}
        summary = task.summarize(record_group)
        i = entry["results"]["quality"].index(quality)
        assert [entry["results"][m.name][i] for m in task.metrics] == [summary[m.name] for m in task.metrics]
    assert entry["per_image"][0]["ground_truth"] == [[20, 5, 100, 90, 0, 0]]
    assert results.doc["entries"][0]["name"] == "jpeg"


def test_eval_task_cli_with_a_random_yolo(cli, tmp_path):
    coco = write_coco(tmp_path / "coco")
    out = tmp_path / "r.json"
    run = cli(
        "eval-task",
        "--task",
        "detection",
        "--model",
        "yolo11n",
        "--random-init",
        "--task-option",
        "imgsz=64",
        "--task-option",
        "conf=1e-9",
        "--task-option",
        "max_det=5",
        "--task-option",
        "agreement_conf=0",
        "--codecs",
        "jpeg",
        "--qualities",
        "jpeg=50",
        "--dataset",
        str(coco),
        "--out",
        str(out),
    )
    assert run.returncode == 0, run.stderr
    header = next(line for line in run.stdout.splitlines() if line.split()[:2] == ["point", "quality"])
    assert header.split() == [
        "point",
        "quality",
        "bpp",
        "psnr-rgb",
        "ms-ssim",
        "map",
        "map50",
        "agreement",
        "agreement50",
        "reference-boxes",
        "encoding_time",
        "decoding_time",
    ]
    assert json.loads(out.read_text())["entries"][0]["results"]["quality"] == [50]
