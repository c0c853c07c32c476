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
