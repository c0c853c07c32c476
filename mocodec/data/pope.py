"""POPE (object-hallucination yes/no questions on COCO val2014) as task samples, grouped per image.

The release is one file per split, ``coco_pope_{random,popular,adversarial}.json``, holding
one JSON object per line: ``question_id``, ``image`` (``COCO_val2014_....jpg``), ``text``
("Is there a <object> in the image?") and ``label`` (``yes``/``no``); 3,000 questions per
split. Images come from a local COCO ``val2014/`` folder.

Offline, :func:`embedded_pope_samples` asks the same kind of question about the held-out
scikit-image photographs (:mod:`mocodec.data.embedded`): seven objects that are in them
and seven that are not, checked by looking at each photograph.
"""

from __future__ import annotations

import json
from pathlib import Path

from mocodec.data.embedded import write_split
from mocodec.data.io import image_present
from mocodec.data.questions import Question
from mocodec.data.samples import Sample
from mocodec.errors import ConfigError

SPLITS = ("random", "popular", "adversarial")
IMAGE_FOLDER = "val2014"

# photograph -> ((object, answer), ...): POPE's question template, balanced yes/no like POPE.
EMBEDDED_QUESTIONS = {
    "astronaut": (("person", "yes"), ("dog", "no"), ("car", "no")),
    "chelsea": (("cat", "yes"), ("dog", "no")),
    "coffee": (("cup", "yes"), ("spoon", "yes"), ("cat", "no")),
    "rocket": (("rocket", "yes"), ("cat", "no")),
    "stereo_motorcycle": (("motorcycle", "yes"), ("dog", "no")),
    "clock": (("clock", "yes"), ("person", "no")),
}


def pope_question_text(obj: str) -> str:
    article = "an" if obj[0] in "aeiou" else "a"
    return f"Is there {article} {obj} in the image?"


def find_pope(root: str | Path, split: str = "random", images: str | Path | None = None) -> tuple[Path, Path]:
    """The (question file, image folder) pair: ``root`` is a ``coco_pope_<split>.json`` or the folder holding it.

    The image folder defaults to ``val2014/`` beside the question file.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown POPE split '{split}'; use one of {', '.join(SPLITS)}")
    root = Path(root)
    questions = root if root.is_file() else root / f"coco_pope_{split}.json"
    if not questions.is_file():
        raise ConfigError(f"POPE question file {questions} does not exist; place coco_pope_{split}.json there")
    images = Path(images) if images is not None else questions.parent / IMAGE_FOLDER
    if not images.is_dir():
        raise ConfigError(
            f"POPE asks about COCO val2014 images, but {images} does not exist; place them there or pass --dataset-option images=PATH"
        )
    return questions, images


def read_pope_questions(path: Path) -> list[dict]:
    """The JSON objects of a POPE file, one per non-empty line."""
    if not path.is_file():
        raise ConfigError(f"POPE question file {path} does not exist; check the dataset path")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} line {number} is not a JSON object ({exc.msg}); POPE files hold one object per line") from None
        if not isinstance(item, dict) or not {"question_id", "image", "text", "label"} <= item.keys():
            raise ConfigError(f"{path} line {number} lacks question_id/image/text/label; is it a POPE question file?")
        if item["label"] not in ("yes", "no"):
            raise ConfigError(f"{path} line {number}: label '{item['label']}' is neither 'yes' nor 'no'")
        items.append(item)
    if not items:
        raise ConfigError(f"POPE question file {path} holds no questions")
    return items


def pope_samples(questions_file: str | Path, images: str | Path, missing: list[tuple[str, str]] | None = None) -> list[Sample]:
    """One sample per image (id: its file name), targets as tuples of yes/no :class:`Question`.

    ``category`` records the split (from the file name). Images absent from ``images``
    are appended to ``missing`` and skipped (``missing=None``: raise).
    """
    questions_file, images = Path(questions_file), Path(images)
    split = questions_file.stem.removeprefix("coco_pope_")
    per_image: dict[str, list[Question]] = {}
    for item in read_pope_questions(questions_file):
        question = Question(id=str(item["question_id"]), text=item["text"], answer=item["label"], category=split)
        per_image.setdefault(item["image"], []).append(question)
    samples = []
    for name, questions in per_image.items():
        path = images / name
        if not image_present(path, f"asked about in {questions_file.name} but absent", missing):
            continue
        samples.append(Sample(Path(name).stem, path, tuple(questions)))
    return samples


def embedded_pope_samples(folder: str | Path) -> list[Sample]:
    """POPE-style questions about the held-out embedded photographs, written once as PNG into ``folder``."""
    samples = []
    for path in write_split(folder, "val"):
        questions = tuple(
            Question(id=f"{path.stem}/{obj}", text=pope_question_text(obj), answer=answer, category="embedded")
            for obj, answer in EMBEDDED_QUESTIONS[path.stem]
        )
        samples.append(Sample(f"embedded/{path.stem}", path, questions))
    return samples
