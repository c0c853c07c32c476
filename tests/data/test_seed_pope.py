"""SEED-Bench and POPE question loaders on tiny fake files in the released formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mocodec.data.pope import EMBEDDED_QUESTIONS, embedded_pope_samples, find_pope, pope_question_text, pope_samples
from mocodec.data.questions import Question
from mocodec.data.seed_bench import find_seed_bench, seed_bench_samples
from mocodec.errors import ConfigError


def write_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), (10, 200, 30)).save(path)
    return path


def seed_question(qid: str, data_id: str, type_id: int, answer: str = "A", data_type: str = "image") -> dict:
    return {
        "answer": answer,
        "choice_a": "One",
        "choice_b": "Two",
        "choice_c": "Three",
        "choice_d": "Four",
        "data_id": data_id,
        "data_type": data_type,
        "question": f"Question {qid}?",
        "question_id": qid,
        "question_type_id": type_id,
    }


def seed_tree(root: Path, present=("1454426_2591111986.jpg", "99_1.jpg")) -> Path:
    """SEED-Bench.json + SEED-Bench-image/ with image questions on three images (one absent) and a video one."""
    doc = {
        "questions": [
            seed_question("101669", "1454426_2591111986.jpg", 5, "A"),
            seed_question("101670", "99_1", 1, "C"),  # some releases give the data_id without its extension
            seed_question("101671", "1454426_2591111986.jpg", 1, "B"),
            seed_question("101672", "absent.jpg", 2, "D"),
            seed_question("v1", "video.mp4", 10, "A", data_type="video"),
        ],
        "question_type": {"Scene Understanding": 1, "Instance Identity": 2, "Instances Counting": 5, "Action Recognition": 10},
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "SEED-Bench.json").write_text(json.dumps(doc))
    for name in present:
        write_image(root / "SEED-Bench-image" / name)
    return root


def test_seed_bench_groups_image_questions_per_image_with_dimension_names(tmp_path):
    missing: list = []
    samples = seed_bench_samples(*find_seed_bench(seed_tree(tmp_path)), missing=missing)
    assert [(s.id, s.path.name) for s in samples] == [("1454426_2591111986.jpg", "1454426_2591111986.jpg"), ("99_1", "99_1.jpg")]
    choices = ("One", "Two", "Three", "Four")
    assert samples[0].target == (
        Question("101669", "Question 101669?", choices, "A", "Instances Counting"),
        Question("101671", "Question 101671?", choices, "B", "Scene Understanding"),
    )
    assert samples[1].target == (Question("101670", "Question 101670?", choices, "C", "Scene Understanding"),)
    assert samples[0].target[0].kind == "multiple-choice" and samples[0].target[0].letters == "ABCD"
    # The video question (dimension 10) is not read; the absent image is skipped and reported.
    assert missing == [(str(tmp_path / "SEED-Bench-image" / "absent.jpg"), "asked about in SEED-Bench.json but absent")]


def test_seed_bench_bad_input_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        find_seed_bench(tmp_path)
    assert str(err.value) == f"SEED-Bench question file {tmp_path / 'SEED-Bench.json'} does not exist; place SEED-Bench.json there"
    root = seed_tree(tmp_path / "seed", present=())
    (root / "SEED-Bench-image").mkdir()
    with pytest.raises(ConfigError) as err:  # without a list to record them in, an absent image is an error
        seed_bench_samples(root / "SEED-Bench.json", root / "SEED-Bench-image")
    image = root / "SEED-Bench-image" / "1454426_2591111986.jpg"
    assert str(err.value) == f"image {image} is asked about in SEED-Bench.json but absent; place it there"
    with pytest.raises(ConfigError, match="SEED-Bench image folder .*elsewhere does not exist"):
        find_seed_bench(root, images=tmp_path / "elsewhere")
    doc = json.loads((root / "SEED-Bench.json").read_text())
    doc["questions"][0]["answer"] = "E"
    (root / "SEED-Bench.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="SEED-Bench question 101669 in .* lacks choices A-D or a letter answer"):
        seed_bench_samples(root / "SEED-Bench.json", root / "SEED-Bench-image", missing=[])
    (root / "SEED-Bench.json").write_text(json.dumps({"questions": [seed_question("v", "x.mp4", 11, data_type="video")]}))
    with pytest.raises(ConfigError, match=r"holds no image questions \(data_type 'image'\)"):
        seed_bench_samples(root / "SEED-Bench.json", root / "SEED-Bench-image", missing=[])
    (root / "SEED-Bench.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="is not SEED-Bench's question file"):
        seed_bench_samples(root / "SEED-Bench.json", root / "SEED-Bench-image", missing=[])


POPE_LINES = [
    {"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?", "label": "yes"},
    {"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a dog in the image?", "label": "no"},
    {"question_id": 3, "image": "COCO_val2014_000000210789.jpg", "text": "Is there a car in the image?", "label": "no"},
    {"question_id": 4, "image": "COCO_val2014_000000000042.jpg", "text": "Is there a cup in the image?", "label": "yes"},
]


def pope_tree(root: Path, split="adversarial", present=("COCO_val2014_000000310196.jpg", "COCO_val2014_000000210789.jpg")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"coco_pope_{split}.json").write_text("\n".join(json.dumps(line) for line in POPE_LINES) + "\n")
    for name in present:
        write_image(root / "val2014" / name)
    return root


def test_pope_groups_questions_per_image_and_records_the_split(tmp_path):
    missing: list = []
    samples = pope_samples(*find_pope(pope_tree(tmp_path), "adversarial"), missing=missing)
    assert [s.id for s in samples] == ["COCO_val2014_000000310196", "COCO_val2014_000000210789"]
    assert samples[0].target == (
        Question("1", "Is there a snowboard in the image?", (), "yes", "adversarial"),
        Question("2", "Is there a dog in the image?", (), "no", "adversarial"),
    )
    assert samples[0].target[0].kind == "yes-no"
    assert missing == [
        (str(tmp_path / "val2014" / "COCO_val2014_000000000042.jpg"), "asked about in coco_pope_adversarial.json but absent")
    ]


def test_pope_bad_input_errors(tmp_path):
    root = pope_tree(tmp_path)
    with pytest.raises(ConfigError) as err:
        find_pope(root, "random")
    assert str(err.value) == f"POPE question file {root / 'coco_pope_random.json'} does not exist; place coco_pope_random.json there"
    with pytest.raises(ConfigError, match="unknown POPE split 'hard'; use one of random, popular, adversarial"):
        find_pope(root, "hard")
    with pytest.raises(ConfigError) as err:
        find_pope(root, "adversarial", images=tmp_path / "coco")
    assert str(err.value) == (
        f"POPE asks about COCO val2014 images, but {tmp_path / 'coco'} does not exist; "
        "place them there or pass --dataset-option images=PATH"
    )
    path = root / "coco_pope_adversarial.json"
    path.write_text(json.dumps(POPE_LINES[0]) + "\n{broken\n")
    with pytest.raises(ConfigError, match=r"line 2 is not a JSON object .*POPE files hold one object per line"):
        pope_samples(path, root / "val2014", missing=[])
    path.write_text(json.dumps({**POPE_LINES[0], "label": "maybe"}))
    with pytest.raises(ConfigError, match="line 1: label 'maybe' is neither 'yes' nor 'no'"):
        pope_samples(path, root / "val2014", missing=[])
    path.write_text(json.dumps({"question": "x"}))
    with pytest.raises(ConfigError, match="line 1 lacks question_id/image/text/label"):
        pope_samples(path, root / "val2014", missing=[])
    path.write_text("\n")
    with pytest.raises(ConfigError, match="holds no questions"):
        pope_samples(path, root / "val2014", missing=[])


def test_embedded_pope_questions_are_balanced_and_about_the_held_out_photos(tmp_path):
    from mocodec.data.embedded import HELDOUT_PHOTOS

    samples = embedded_pope_samples(tmp_path)
    assert [s.id for s in samples] == [f"embedded/{name}" for name in HELDOUT_PHOTOS]
    assert all(s.path.is_file() for s in samples)
    questions = [q for s in samples for q in s.target]
    assert sum(q.answer == "yes" for q in questions) == sum(q.answer == "no" for q in questions) == 7
    assert samples[1].target[0] == Question("chelsea/cat", "Is there a cat in the image?", (), "yes", "embedded")
    assert set(EMBEDDED_QUESTIONS) == set(HELDOUT_PHOTOS)
    assert pope_question_text("apple") == "Is there an apple in the image?"
