"""Visual question answering on decoded images: SEED-Bench multiple choice and POPE yes/no.

The VLM (:mod:`mocodec.tasks.vlm_models`) answers each question about an image twice,
on the original and on the decoded image; prompts and parsing are those of
:mod:`mocodec.tasks.vlm_prompts`. Metrics (``summarize``):

- ``accuracy``: answers on the decoded images that match the labels; unparseable
  multiple-choice answers are wrong; ``accuracy/<dimension>`` per SEED-Bench dimension;
- ``f1``, ``precision``, ``recall``, ``yes-ratio``: POPE's scores over yes/no questions;
- ``agreement``: fraction of questions answered the same on the original and the
  decoded image (no labels needed);
- ``unparseable``: fraction of answers on the decoded images the parser could not read;
- ``accuracy-original``, ``f1-original``: the same model on the originals, the
  ceiling every curve tends to (equal at every rate).

A per-image record lists its questions::

    {"questions": [{"id", "category", "kind", "label",
                    "original", "decoded",                    # raw answer texts
                    "original_answer", "decoded_answer"}]}    # parsed; null when unparseable

Images without questions (a plain folder, or a sweep that passes no targets) are asked the
:data:`~mocodec.data.questions.LABEL_FREE_QUESTIONS`, which measure ``agreement`` only.

The answers on an original do not depend on the rate: :meth:`VQATask.reference` keeps the
image, the first :meth:`VQATask.compare` answers its questions on it and drops the
image, and every later rate reuses those answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor

from mocodec.data.imagenet import cache_dir
from mocodec.data.io import list_images
from mocodec.data.pope import embedded_pope_samples, find_pope, pope_samples
from mocodec.data.questions import LABEL_FREE_QUESTIONS, Question
from mocodec.data.seed_bench import QUESTIONS_FILE, find_seed_bench, seed_bench_samples
from mocodec.errors import ConfigError
from mocodec.evaluation.metrics import Metric
from mocodec.tasks.base import Sample, Task
from mocodec.tasks.inputs import number_option, report_missing, to_uint8_images
from mocodec.tasks.registry import register_task
from mocodec.tasks.vlm_prompts import PROMPT_TEMPLATES, parse_answer, prompt, scored_answer, yes_no_scores

BENCHMARKS = ("auto", "seed-bench", "pope", "unlabeled")


@dataclass
class OriginalAnswers:
    """The model's answers on one original image, by question id; the image is kept until they are all in."""

    image: Image.Image | None
    answers: dict[str, str] = field(default_factory=dict)


@register_task(name="vlm-qa", test_kwargs={"model": "random:qwen2.5-vl", "max_new_tokens": 4, "batch_size": 4})
class VQATask(Task):
    """A frozen VLM answering benchmark questions about original and decoded images.

    ``model``: a transformers hub name (``OpenGVLab/InternVL3-1B-hf``,
    ``Qwen/Qwen2.5-VL-3B-Instruct``), a snapshot folder, or ``random:qwen2.5-vl`` /
    ``random:internvl`` (tiny, offline); ``weights``: a snapshot folder instead of the
    hub's; ``pretrained=False``: the architecture with random weights. Greedy decoding of
    at most ``max_new_tokens``, ``batch_size`` questions per ``generate``; fp32 on CPU,
    bf16 on GPU unless ``dtype`` says otherwise.

    ``metrics`` are those of the questions :meth:`dataset` read: POPE's scores for yes/no
    questions, per-dimension accuracy for multiple-choice ones.
    """

    name = "vlm-qa"
    metrics = (
        Metric("accuracy", "accuracy (decoded images)", per_image=False),
        Metric("agreement", "answers equal to the original's (fraction)", per_image=False),
        Metric("f1", "POPE F1", per_image=False),
        Metric("precision", "POPE precision", per_image=False),
        Metric("recall", "POPE recall", per_image=False),
        Metric("yes-ratio", "fraction of 'yes' answers", per_image=False),
        Metric("unparseable", "unparseable answers (fraction)", higher_is_better=False, per_image=False),
        Metric("accuracy-original", "accuracy on the originals", reference=True, per_image=False),
        Metric("f1-original", "POPE F1 on the originals", reference=True, per_image=False),
    )
    YES_NO_METRICS = ("f1", "precision", "recall", "yes-ratio", "f1-original")

    def __init__(
        self,
        model: str = "OpenGVLab/InternVL3-1B-hf",
        weights: str | Path | None = None,
        pretrained: bool = True,
        max_new_tokens: int = 16,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str | None = None,
    ) -> None:
        from mocodec.tasks.vlm_models import VisionLanguageModel  # the one importer of transformers: seconds, paid when a VLM is built

        self.model_name, self.weights, self.pretrained = model, weights, pretrained
        self.vlm = VisionLanguageModel.from_name(
            model,
            weights,
            pretrained,
            device=device,
            dtype=dtype,
            max_new_tokens=number_option(max_new_tokens, "max_new_tokens", int, 1),
            batch_size=number_option(batch_size, "batch_size", int, 1),
        )

    def identity(self) -> dict[str, Any]:
        random = not self.pretrained or (self.model_name.startswith("random:") and not self.weights)
        weights = str(Path(self.weights).resolve()) if self.weights else ("random" if random else "pretrained")
        return {
            "name": self.name,
            "model": self.model_name,
            "weights": weights,
            "dtype": str(self.vlm.dtype).removeprefix("torch."),
            "max_new_tokens": self.vlm.generation.max_new_tokens,
            "prompts": PROMPT_TEMPLATES,
        }

    # ------------------------------------------------------------------ data

    def dataset(
        self,
        root: str | Path | None = None,
        benchmark: str = "auto",
        split: str = "random",
        images: str | Path | None = None,
    ) -> list[Sample]:
        """Questions grouped per image: SEED-Bench (``SEED-Bench.json`` + ``SEED-Bench-image/``) or
        POPE (``coco_pope_<split>.json`` + COCO ``val2014/``); ``root`` is the question file or its
        folder, ``images`` the image folder if elsewhere. Any other image folder gets the
        :data:`~mocodec.data.questions.LABEL_FREE_QUESTIONS` (agreement only). ``root=None``:
        POPE-style questions about the held-out embedded photographs. Images asked about but
        absent are skipped with a warning.
        """
        if benchmark not in BENCHMARKS:
            raise ConfigError(f"unknown VQA benchmark '{benchmark}'; use one of {', '.join(BENCHMARKS)}")
        if root is None:
            samples = embedded_pope_samples(cache_dir() / "embedded-val")
        else:
            samples = self._benchmark_samples(Path(root), benchmark, split, images)
        self.metrics = self.metrics_for([q for s in samples for q in s.target])
        return samples

    def _benchmark_samples(self, root: Path, benchmark: str, split: str, images: str | Path | None) -> list[Sample]:
        benchmark = _detect_benchmark(root, split) if benchmark == "auto" else benchmark
        missing: list[tuple[str, str]] = []
        if benchmark == "seed-bench":
            samples = seed_bench_samples(*find_seed_bench(root, images), missing=missing)
        elif benchmark == "pope":
            samples = pope_samples(*find_pope(root, split, images), missing=missing)
        else:
            samples = _label_free_samples(root)
        report_missing(samples, missing)
        return samples

    def metrics_for(self, questions: Sequence[Question]) -> tuple[Metric, ...]:
        """The metrics ``summarize`` fills for these questions, in display order (per-dimension accuracy last)."""
        labelled = [q for q in questions if q.answer is not None]
        if not labelled:
            return tuple(m for m in VQATask.metrics if m.name in ("agreement", "unparseable"))
        kinds = {q.kind for q in labelled}
        dimensions = sorted({q.category for q in labelled if q.kind == "multiple-choice"})
        return (
            *(m for m in VQATask.metrics if m.name not in self.YES_NO_METRICS or "yes-no" in kinds),
            *(Metric(f"accuracy/{d}", f"accuracy on {d} questions", per_image=False) for d in dimensions),
        )

    # ------------------------------------------------------------------ evaluation

    def reference(self, original: Tensor) -> list[OriginalAnswers]:
        return [OriginalAnswers(Image.fromarray(a)) for a in to_uint8_images(original)]

    def compare(self, references: Sequence[OriginalAnswers], decoded: Tensor, targets: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        targets = [LABEL_FREE_QUESTIONS if t is None else t for t in (targets or [None] * len(references))]
        # One batch of questions: those not yet asked about the originals, then all about the decoded images.
        pending = [(ref, q) for ref, questions in zip(references, targets, strict=True) for q in questions if q.id not in ref.answers]
        if any(ref.image is None for ref, _ in pending):
            raise ValueError("an original image was released before all its questions were answered")
        decoded_images = [Image.fromarray(a) for a in to_uint8_images(decoded)]
        images = [ref.image for ref, _ in pending] + [im for im, questions in zip(decoded_images, targets, strict=True) for _ in questions]
        prompts = [prompt(q) for _, q in pending] + [prompt(q) for questions in targets for q in questions]
        texts = self.vlm.answer(images, prompts)
        for (ref, question), text in zip(pending, texts):
            ref.answers[question.id] = text
        decoded_texts = iter(texts[len(pending) :])
        records = []
        for ref, questions in zip(references, targets):
            ref.image = None  # its questions are all answered: the original's pixels are no longer needed
            records.append({"questions": [_question_row(q, ref.answers[q.id], next(decoded_texts)) for q in questions]})
        return records

    def evaluate(self, original: Tensor, decoded: Tensor, targets: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        return self.compare(self.reference(original), decoded, targets)

    @classmethod
    def summarize(cls, records: Sequence[dict[str, Any]]) -> dict[str, float | None]:
        rows = [row for record in records for row in record["questions"]]
        out: dict[str, float | None] = dict.fromkeys(m.name for m in VQATask.metrics)  # every metric, whatever dataset() read
        if not rows:
            return out
        scored = {side: [scored_answer(r["kind"], r[f"{side}_answer"], r[side]) for r in rows] for side in ("original", "decoded")}
        out["agreement"] = float(np.mean([a == b for a, b in zip(scored["original"], scored["decoded"])]))
        out["unparseable"] = float(np.mean([r["decoded_answer"] is None for r in rows]))
        labelled = [i for i, r in enumerate(rows) if r["label"] is not None]
        for side, suffix in (("decoded", ""), ("original", "-original")):
            correct = [scored[side][i] == rows[i]["label"] for i in labelled]
            if correct:
                out[f"accuracy{suffix}"] = float(np.mean(correct))
            yes_no = [i for i in labelled if rows[i]["kind"] == "yes-no"]
            if yes_no:
                scores = yes_no_scores([scored[side][i] for i in yes_no], [rows[i]["label"] for i in yes_no])
                out[f"f1{suffix}"] = scores["f1"]
                if side == "decoded":
                    out.update({k: scores[k] for k in ("precision", "recall", "yes-ratio")})
        for category in sorted({rows[i]["category"] for i in labelled if rows[i]["kind"] == "multiple-choice"}):
            members = [i for i in labelled if rows[i]["category"] == category and rows[i]["kind"] == "multiple-choice"]
            out[f"accuracy/{category}"] = float(np.mean([scored["decoded"][i] == rows[i]["label"] for i in members]))
        return out


def _question_row(question: Question, original: str, decoded: str) -> dict[str, Any]:
    return {
        "id": question.id,
        "category": question.category,
        "kind": question.kind,
        "label": question.answer,
        "original": original,
        "decoded": decoded,
        "original_answer": parse_answer(question, original),
        "decoded_answer": parse_answer(question, decoded),
    }


def _detect_benchmark(root: Path, split: str) -> str:
    """``seed-bench`` or ``pope`` from the files present (or the file given)."""
    if root.is_dir():
        if (root / QUESTIONS_FILE).is_file():
            return "seed-bench"
        if (root / f"coco_pope_{split}.json").is_file():
            return "pope"
        return "unlabeled"
    if not root.is_file():
        raise ConfigError(f"dataset {root} does not exist; give SEED-Bench's or POPE's question file or folder")
    with root.open(encoding="utf-8") as f:
        first_line = f.readline()
    try:  # POPE holds one complete JSON object per line; SEED-Bench one (multi-line or huge) document
        first = json.loads(first_line)
        return "pope" if isinstance(first, dict) and "label" in first else "seed-bench"
    except json.JSONDecodeError:
        return "seed-bench"


def _label_free_samples(root: Path) -> list[Sample]:
    """Every image under ``root`` with the label-free questions (agreement only)."""
    samples = [Sample(p.relative_to(root).as_posix(), p, LABEL_FREE_QUESTIONS) for p in list_images(root)]
    if not samples:
        raise ConfigError(
            f"no SEED-Bench.json, coco_pope_<split>.json or images in {root}; vlm-qa reads SEED-Bench or POPE, or asks label-free questions about images"
        )
    return samples
