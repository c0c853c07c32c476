"""SEED-Bench-1 image questions as task samples, grouped per image.

The release is ``SEED-Bench.json`` (``{"questions": [...], "question_type": {name: id}}``)
and the folder ``SEED-Bench-image/``. Each question has ``question_id``, ``data_id``
(the image's file name), ``data_type``, ``question``, ``choice_a`` ... ``choice_d``,
``answer`` (a letter) and ``question_type_id``: dimensions 1-9 ask about images, 10-12
about videos. Only image questions are read (a codec compresses images); accuracy is
broken down by dimension name. All questions about one image form one sample, so the
image is coded once per rate.
"""

from __future__ import annotations

from pathlib import Path

from mocodec.data.coco import read_json
from mocodec.data.io import image_present
from mocodec.data.questions import Question
from mocodec.data.samples import Sample
from mocodec.errors import ConfigError

QUESTIONS_FILE = "SEED-Bench.json"
IMAGE_FOLDER = "SEED-Bench-image"
CHOICE_KEYS = ("choice_a", "choice_b", "choice_c", "choice_d")


def find_seed_bench(root: str | Path, images: str | Path | None = None) -> tuple[Path, Path]:
    """The (questions file, image folder) pair: ``root`` is the json or the folder holding both."""
    root = Path(root)
    questions = root if root.is_file() else root / QUESTIONS_FILE
    images = Path(images) if images is not None else questions.parent / IMAGE_FOLDER
    if not questions.is_file():
        raise ConfigError(f"SEED-Bench question file {questions} does not exist; place {QUESTIONS_FILE} there")
    if not images.is_dir():
        raise ConfigError(
            f"SEED-Bench image folder {images} does not exist; unpack {IMAGE_FOLDER}/ there or pass --dataset-option images=PATH"
        )
    return questions, images


def _image_path(images: Path, data_id: str) -> Path:
    path = images / data_id
    return path if path.suffix or path.is_file() else path.with_name(f"{data_id}.jpg")


def seed_bench_samples(questions_file: str | Path, images: str | Path, missing: list[tuple[str, str]] | None = None) -> list[Sample]:
    """One sample per image (id: its ``data_id``), targets as tuples of :class:`Question`.

    Images absent from ``images`` are appended to ``missing`` and skipped (``missing=None``: raise).
    """
    questions_file, images = Path(questions_file), Path(images)
    data = read_json(questions_file, "SEED-Bench question file")
    if not isinstance(data, dict) or "questions" not in data:
        raise ConfigError(f"{questions_file} is not SEED-Bench's question file (no 'questions' list)")
    dimension = {int(i): name for name, i in data.get("question_type", {}).items()}
    per_image: dict[str, list[Question]] = {}
    for item in data["questions"]:
        if item.get("data_type") != "image":
            continue
        if item.get("answer") not in ("A", "B", "C", "D") or any(k not in item for k in CHOICE_KEYS):
            raise ConfigError(f"SEED-Bench question {item.get('question_id')} in {questions_file} lacks choices A-D or a letter answer")
        type_id = int(item["question_type_id"])
        per_image.setdefault(str(item["data_id"]), []).append(
            Question(
                id=str(item["question_id"]),
                text=item["question"],
                choices=tuple(str(item[k]) for k in CHOICE_KEYS),
                answer=item["answer"],
                category=dimension.get(type_id, f"type {type_id}"),
            )
        )
    if not per_image:
        raise ConfigError(f"{questions_file} holds no image questions (data_type 'image')")
    samples = []
    for data_id, questions in per_image.items():
        path = _image_path(images, data_id)
        if not image_present(path, f"asked about in {questions_file.name} but absent", missing):
            continue
        samples.append(Sample(data_id, path, tuple(questions)))
    return samples
