"""Questions about an image, the targets of visual question-answering tasks (SEED-Bench, POPE)."""

from __future__ import annotations

from dataclasses import dataclass

LETTERS = "ABCDEFGH"


@dataclass(frozen=True)
class Question:
    """One question about one image.

    ``choices`` holds the options of a multiple-choice question (lettered A, B, ... in
    order; ``answer`` is a letter) and is empty for a yes/no question (``answer`` is
    ``"yes"`` or ``"no"``). ``answer`` is None when the benchmark gives no label.
    ``category`` is what accuracy is broken down by (SEED-Bench's evaluation dimension).
    """

    id: str
    text: str
    choices: tuple[str, ...] = ()
    answer: str | None = None
    category: str = ""

    @property
    def kind(self) -> str:
        return "multiple-choice" if self.choices else "yes-no"

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.choices)]


# Asked about every image of a folder without questions (and when a sweep passes no targets):
# no answers, so they measure agreement only. Objects any photo collection has or lacks,
# a count and a scene question, so a decoding artefact has several ways to change an answer.
LABEL_FREE_QUESTIONS = (
    Question("label-free/person", "Is there a person in the image?", category="label-free"),
    Question("label-free/vehicle", "Is there a vehicle in the image?", category="label-free"),
    Question("label-free/animal", "Is there an animal in the image?", category="label-free"),
    Question("label-free/text", "Is there any text in the image?", category="label-free"),
    Question("label-free/count", "How many people are in the image?", ("None", "One", "Two", "Three or more"), category="label-free"),
    Question(
        "label-free/scene",
        "Where was this photo taken?",
        ("Indoors", "Outdoors in a city", "Outdoors in nature", "In space"),
        category="label-free",
    ),
)
