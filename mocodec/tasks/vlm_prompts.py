"""Prompt templates, answer parsing and scores for VLM question answering: explicit rules, tested.

Prompts (LLaVA-1.5's evaluation templates, which InternVL and Qwen-VL reports also use):

- multiple choice (SEED-Bench)::

      {question}
      A. {choice A}
      B. {choice B}
      ...
      Answer with the option's letter from the given choices directly.

- yes/no (POPE)::

      {question}
      Answer the question using a single word or phrase.

Parsing a multiple-choice answer, first rule that applies (letters limited to the choices):

1. surrounding spaces, quotes and ``*`` are dropped;
2. it starts with a letter alone or followed by ``.``, ``)``, ``:``, a space or the end
   (``B``, ``B.``, ``(B)``, ``B) a dog``) -> that letter (so ``A dog`` reads as A, as
   lmms-eval's first-letter rule reads it);
3. it contains "answer is X", "answer: X", "option X" or "option is X" (any case, X a capital) -> X;
4. it equals one choice's text, ignoring case and final punctuation -> that choice;
5. otherwise it is **unparseable**: counted, and scored as wrong.

Parsing a yes/no answer follows POPE's reference scorer: keep the first sentence (up to
the first ``.``), drop commas, split into words; ``no`` or ``not`` among them -> "no",
otherwise "yes". Words are compared ignoring case and surrounding punctuation, so
``NO!`` reads as "no" (the reference misses it: it would score "yes"). An answer with
neither ``yes`` nor ``no``/``not`` is **unparseable**: counted, and scored "yes" as the
reference scores it.

Scores of yes/no questions are POPE's, with "yes" the positive class: accuracy,
precision, recall, F1 and the ratio of "yes" answers; a ratio with an empty denominator
is 0 (scikit-learn's ``zero_division=0``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mocodec.data.questions import Question

MULTIPLE_CHOICE_INSTRUCTION = "Answer with the option's letter from the given choices directly."
YES_NO_INSTRUCTION = "Answer the question using a single word or phrase."
YES_NO_DEFAULT = "yes"  # what POPE's reference scorer reads into an answer without no/not
PROMPT_TEMPLATES = {"multiple-choice": MULTIPLE_CHOICE_INSTRUCTION, "yes-no": YES_NO_INSTRUCTION}


def prompt(question: Question) -> str:
    """The text sent with the image for ``question``."""
    if question.kind == "multiple-choice":
        options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(question.letters, question.choices))
        return f"{question.text}\n{options}\n{MULTIPLE_CHOICE_INSTRUCTION}"
    return f"{question.text}\n{YES_NO_INSTRUCTION}"


def _normalise(text: str) -> str:
    return text.strip().strip("*\"'`").strip().lower().rstrip(".!?")


def parse_choice(text: str, letters: str, choices: Sequence[str] = ()) -> str | None:
    """The option letter a multiple-choice answer names, or None (rules 1-5 of the module docstring)."""
    text = text.strip().strip("*\"'`").strip()
    pattern = f"[{letters}]"
    if match := re.match(rf"\(?({pattern})(?:[.):\s]|$)", text):
        return match.group(1)
    if match := re.search(rf"(?i:answer|option)(?:\s+is)?\s*:?\s*\(?({pattern})\b", text):
        return match.group(1)
    for letter, choice in zip(letters, choices):
        if _normalise(text) == _normalise(choice):
            return letter
    return None


def parse_yes_no(text: str) -> str | None:
    """ "yes"/"no" by POPE's reference rule, or None when the answer says neither (scored "yes")."""
    first_sentence = text.split(".")[0].replace(",", "")
    words = {word.strip("!?;:\"'()*").lower() for word in first_sentence.split()}
    if words & {"no", "not"}:
        return "no"
    if "yes" in words:
        return "yes"
    return None


def parse_answer(question: Question, text: str) -> str | None:
    if question.kind == "multiple-choice":
        return parse_choice(text, question.letters, question.choices)
    return parse_yes_no(text)


def scored_answer(question: Question | str, parsed: str | None, text: str) -> str:
    """The answer that is scored and compared: the parsed one; unparseable yes/no answers
    count as "yes" (POPE's rule); unparseable multiple-choice answers stay their own text,
    so two of them agree only when the model said the same thing."""
    kind = question if isinstance(question, str) else question.kind
    if parsed is not None:
        return parsed
    return YES_NO_DEFAULT if kind == "yes-no" else f"unparsed: {_normalise(text)}"


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def yes_no_scores(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """POPE's scores with "yes" as the positive class (predictions already read as yes/no)."""
    pairs = list(zip(predictions, labels, strict=True))
    tp = sum(p == "yes" and t == "yes" for p, t in pairs)
    fp = sum(p == "yes" and t == "no" for p, t in pairs)
    tn = sum(p == "no" and t == "no" for p, t in pairs)
    fn = sum(p == "no" and t == "yes" for p, t in pairs)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "accuracy": _ratio(tp + tn, len(pairs)),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "yes-ratio": _ratio(tp + fp, len(pairs)),
    }
