"""VLM question answering: prompts, parsing and scores against hand-computed values; tiny random VLMs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mocodec.data.questions import Question
from mocodec.errors import ConfigError, UnknownNameError, WeightsError
from mocodec.tasks import TASKS, create_task
from mocodec.tasks.vlm_prompts import parse_choice, parse_yes_no, prompt, scored_answer, yes_no_scores

SEED_Q = Question("7", "How many towels are in the image?", ("One", "Two", "Three", "Four"), "B", "Instances Counting")
POPE_Q = Question("1", "Is there a dog in the image?", (), "no", "random")


# ---------------------------------------------------------------------------- prompts and parsing


def test_prompt_templates_are_llava_evaluation_prompts():
    assert prompt(SEED_Q) == (
        "How many towels are in the image?\nA. One\nB. Two\nC. Three\nD. Four\n"
        "Answer with the option's letter from the given choices directly."
    )
    assert prompt(POPE_Q) == "Is there a dog in the image?\nAnswer the question using a single word or phrase."


@pytest.mark.parametrize(
    "text, expected",
    [
        ("B", "B"),
        ("B.", "B"),
        (" (C) ", "C"),
        ("D) Four", "D"),
        ("**A**", "A"),
        ("A: One", "A"),
        ("A towel", "A"),  # a leading capital letter and a space read as that option (lmms-eval's first-letter rule)
        ("The answer is C.", "C"),
        ("answer: (D)", "D"),
        ("The correct option is B", "B"),
        ("Answer:B", "B"),
        ("Two.", "B"),
        ("three", "C"),  # the text of a choice names it
        ("Bananas", None),
        ("the answer is a dog", None),
        ("E", None),
        ("b", None),
        ("", None),
        ("I cannot tell", None),
    ],
)
def test_parse_choice(text, expected):
    assert parse_choice(text, "ABCD", SEED_Q.choices) == expected


def test_parse_choice_only_accepts_the_question_letters():
    assert parse_choice("C", "AB") is None and parse_choice("B", "AB") == "B"


def pope_reference_reading(text: str) -> str:
    """POPE's evaluate.py, transcribed: first sentence, commas dropped, split on spaces, No/not/no -> no."""
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


YES_NO_CASES = [
    ("Yes", "yes"),
    ("No", "no"),
    ("yes.", "yes"),
    ("No.", "no"),
    ("Yes, there is a dog in the image.", "yes"),
    ("No, there is no dog.", "no"),
    ("There is not a dog in the image.", "no"),
    ("Yes. No.", "yes"),
    ("no", "no"),
    ("yes, but it is not a real one", "no"),  # POPE reads no/not anywhere in the first sentence
]


@pytest.mark.parametrize("text, expected", YES_NO_CASES)
def test_parse_yes_no_agrees_with_popes_reference_scorer(text, expected):
    assert parse_yes_no(text) == expected == pope_reference_reading(text)


@pytest.mark.parametrize(
    "text, expected, reference",
    [
        ("NO!", "no", "yes"),
        ("No!", "no", "yes"),  # case and punctuation variants the reference misses
        ("I think so", None, "yes"),
        ("A dog", None, "yes"),
        ("", None, "yes"),  # unparseable: scored "yes" like the reference
    ],
)
def test_parse_yes_no_variants_and_unparseable_answers(text, expected, reference):
    assert parse_yes_no(text) == expected
    assert pope_reference_reading(text) == reference
    assert scored_answer(POPE_Q, parse_yes_no(text), text) == (expected or "yes")


def test_unparseable_multiple_choice_answers_agree_only_when_the_texts_do():
    assert scored_answer(SEED_Q, None, "I cannot tell.") == scored_answer(SEED_Q, None, " i cannot tell") == "unparsed: i cannot tell"
    assert scored_answer(SEED_Q, None, "maybe") != scored_answer(SEED_Q, None, "I cannot tell")


def test_yes_no_scores_against_hand_computed_values():
    # TP = 2 (rows 1, 5), FP = 1 (row 2), TN = 1 (row 3), FN = 1 (row 4).
    scores = yes_no_scores(["yes", "yes", "no", "no", "yes"], ["yes", "no", "no", "yes", "yes"])
    assert scores == pytest.approx({"accuracy": 3 / 5, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "yes-ratio": 3 / 5})
    # Never saying yes: precision has an empty denominator and is 0 (scikit-learn's zero_division=0).
    assert yes_no_scores(["no", "no"], ["yes", "no"]) == {"accuracy": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0, "yes-ratio": 0.0}


# ---------------------------------------------------------------------------- summarize on hand-made records


def row(question: Question, original: str, decoded: str) -> dict:
    from mocodec.tasks.vlm import _question_row

    return _question_row(question, original, decoded)


def test_summarize_against_hand_computed_values(vlm_task):
    seed_scene = Question("8", "What is the scene?", ("Beach", "Kitchen", "Street", "Forest"), "C", "Scene Understanding")
    pope_cat = Question("2", "Is there a cat in the image?", (), "yes", "random")
    records = [
        {"questions": [row(SEED_Q, "B", "B"), row(seed_scene, "C", "I am not sure")]},  # right; unparseable (wrong)
        {"questions": [row(POPE_Q, "No.", "Yes"), row(pope_cat, "Yes", "yes, a cat.")]},  # FP; TP
        {"questions": [row(POPE_Q, "no", "maybe")]},  # unparseable -> "yes": FP
    ]
    summary = vlm_task.summarize(records)
    # decoded: SEED 1/2 right, POPE: predictions yes, yes, yes vs labels no, yes, no -> TP 1, FP 2.
    assert summary["accuracy"] == pytest.approx(2 / 5)
    assert summary["precision"] == pytest.approx(1 / 3) and summary["recall"] == 1.0
    assert summary["f1"] == pytest.approx(2 * (1 / 3) / (1 / 3 + 1))
    assert summary["yes-ratio"] == 1.0
    assert summary["unparseable"] == pytest.approx(2 / 5)
    # Same answer on original and decoded for SEED_Q and pope_cat only.
    assert summary["agreement"] == pytest.approx(2 / 5)
    # Originals: every answer right; POPE predictions no, yes, no: TP 1, TN 2 -> F1 1.
    assert summary["accuracy-original"] == 1.0 and summary["f1-original"] == 1.0
    assert summary["accuracy/Instances Counting"] == 1.0 and summary["accuracy/Scene Understanding"] == 0.0
    assert "accuracy/random" not in summary  # POPE splits are whole files, not dimensions


# ---------------------------------------------------------------------------- tiny random VLMs end to end


@pytest.fixture(scope="module")
def vlm_task():
    """The registry's tiny configuration: a random Qwen2.5-VL of ~100k parameters, offline."""
    return create_task("vlm-qa", **TASKS.meta("vlm-qa")["test_kwargs"])


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    import skimage.data

    crops = [skimage.data.astronaut()[:56, :84], skimage.data.chelsea()[:56, :84]]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255)


QUESTIONS = [(POPE_Q, SEED_Q), (Question("3", "Is there a cat in the image?", (), "yes", "random"),)]


def test_registry_entry_answers_offline(vlm_task, photos):
    assert vlm_task.identity()["weights"] == "random" and vlm_task.identity()["dtype"] == "float32"
    records = vlm_task.evaluate(photos, photos, QUESTIONS)
    assert [[q["id"] for q in r["questions"]] for r in records] == [["1", "7"], ["3"]]
    first = records[0]["questions"][0]
    assert set(first) == {"id", "category", "kind", "label", "original", "decoded", "original_answer", "decoded_answer"}
    assert all(q["original"] == q["decoded"] and isinstance(q["decoded"], str) for r in records for q in r["questions"])
    assert json.loads(json.dumps(records)) == records
    assert vlm_task.summarize(records)["agreement"] == 1.0


def test_originals_are_answered_once_across_rates(vlm_task, photos, monkeypatch):
    asked: list[int] = []
    answer = vlm_task.vlm.answer
    monkeypatch.setattr(vlm_task.vlm, "answer", lambda images, prompts: asked.append(len(prompts)) or answer(images, prompts))
    references = vlm_task.reference(photos)
    first = vlm_task.compare(references, photos.flip(-1), QUESTIONS)
    second = vlm_task.compare(references, photos.flip(-2), QUESTIONS)
    assert asked == [3 + 3, 3]  # the originals' three questions only the first time
    assert all(ref.image is None for ref in references)  # their pixels are released once answered
    assert [q["original"] for r in first for q in r["questions"]] == [q["original"] for r in second for q in r["questions"]]


def test_batched_generation_equals_one_question_at_a_time(vlm_task, photos):
    images = [Image.fromarray(a) for a in photos.mul(255).round().byte().permute(0, 2, 3, 1).numpy()]
    pairs = [(images[0], prompt(POPE_Q)), (images[1], prompt(SEED_Q)), (images[0], prompt(SEED_Q)), (images[1], "Describe it.")]
    batched = vlm_task.vlm.answer([p[0] for p in pairs], [p[1] for p in pairs])
    single = [vlm_task.vlm.answer([image], [text])[0] for image, text in pairs]
    assert batched == single


def test_tiny_internvl_runs_the_same_pipeline(photos):
    task = create_task("vlm-qa", model="random:internvl", max_new_tokens=3)
    records = task.evaluate(photos, photos, QUESTIONS)
    assert task.summarize(records)["agreement"] == 1.0 and len(records[0]["questions"]) == 2


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    """The tiny Qwen2.5-VL written with save_pretrained: a ~0.5 MB local snapshot folder."""
    from mocodec.tasks.vlm_tiny import tiny_random_vlm

    folder = tmp_path_factory.mktemp("tiny-qwen2.5-vl")
    model, processor = tiny_random_vlm("qwen2.5-vl")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_a_snapshot_folder_loads_through_the_auto_classes(snapshot, vlm_task, photos):
    task = create_task("vlm-qa", model=str(snapshot), max_new_tokens=4)
    assert type(task.vlm.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert task.identity()["weights"] == "pretrained"
    # The same weights as random:qwen2.5-vl, so the same answers.
    assert task.evaluate(photos, photos, QUESTIONS) == vlm_task.evaluate(photos, photos, QUESTIONS)
    random_init = create_task("vlm-qa", model="Qwen/Qwen2.5-VL-3B-Instruct", weights=str(snapshot), pretrained=False)
    assert random_init.identity()["weights"] == str(snapshot.resolve())
    assert random_init.summarize(random_init.evaluate(photos, photos, QUESTIONS))["agreement"] == 1.0


def test_models_that_cannot_be_loaded(tmp_path):
    from huggingface_hub.constants import HF_HUB_CACHE

    with pytest.raises(WeightsError) as err:
        create_task("vlm-qa")
    cached = Path(HF_HUB_CACHE) / "models--OpenGVLab--InternVL3-1B-hf"
    assert str(err.value) == (
        "cannot download VLM 'OpenGVLab/InternVL3-1B-hf' from the Hugging Face hub (LocalEntryNotFoundError); "
        f"run `hf download OpenGVLab/InternVL3-1B-hf` where the hub is reachable and copy the cache to {cached}, "
        "or pass the snapshot folder as --weights DIR"
    )
    with pytest.raises(WeightsError) as err:
        create_task("vlm-qa", model=str(tmp_path))
    assert str(err.value) == f"VLM folder {tmp_path} has no config.json; give a folder written by save_pretrained or `hf download`"
    with pytest.raises(WeightsError, match="VLM './missing/model' is neither a folder nor a hub repo id"):
        create_task("vlm-qa", model="./missing/model")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(WeightsError, match=rf"^cannot load a VLM from {tmp_path} \(.*\); give a transformers image-text-to-text snapshot$"):
        create_task("vlm-qa", model=str(tmp_path))
    with pytest.raises(UnknownNameError, match="unknown tiny VLM 'random:llava'; known: random:qwen2.5-vl, random:internvl"):
        create_task("vlm-qa", model="random:llava")
    with pytest.raises(ConfigError, match="option batch_size must be >= 1, got 0"):
        create_task("vlm-qa", model="random:qwen2.5-vl", batch_size=0)
    with pytest.raises(ConfigError, match="unknown dtype 'int8'; use one of float32, bfloat16, float16"):
        create_task("vlm-qa", model="random:qwen2.5-vl", dtype="int8")


# ---------------------------------------------------------------------------- datasets and the eval-task sweep


def write_pope(root: Path) -> Path:
    import skimage.data

    lines = [
        {"question_id": 1, "image": "COCO_val2014_000000000001.jpg", "text": "Is there a person in the image?", "label": "yes"},
        {"question_id": 2, "image": "COCO_val2014_000000000001.jpg", "text": "Is there a dog in the image?", "label": "no"},
        {"question_id": 3, "image": "COCO_val2014_000000000002.jpg", "text": "Is there a cat in the image?", "label": "yes"},
    ]
    (root / "val2014").mkdir(parents=True)
    Image.fromarray(skimage.data.astronaut()[::8, ::8]).save(root / "val2014" / "COCO_val2014_000000000001.jpg")
    Image.fromarray(skimage.data.chelsea()[::6, ::6]).save(root / "val2014" / "COCO_val2014_000000000002.jpg")
    (root / "coco_pope_popular.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root


def write_seed(root: Path) -> Path:
    """SEED-Bench.json with questions of two dimensions on one image, and one on an absent image."""

    def question(qid, data_id, type_id):
        return {
            "question_id": qid,
            "data_id": data_id,
            "data_type": "image",
            "question": "Which?",
            "answer": "A",
            "choice_a": "a",
            "choice_b": "b",
            "choice_c": "c",
            "choice_d": "d",
            "question_type_id": type_id,
        }

    doc = {
        "questions": [question("1", "x.jpg", 5), question("2", "x.jpg", 1), question("3", "gone.jpg", 2)],
        "question_type": {"Scene Understanding": 1, "Instance Identity": 2, "Instances Counting": 5},
    }
    (root / "SEED-Bench-image").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(root / "SEED-Bench-image" / "x.jpg")
    (root / "SEED-Bench.json").write_text(json.dumps(doc))
    return root


def test_dataset_reads_the_benchmark_and_sets_its_metrics(vlm_task, tmp_path, monkeypatch):
    pope = write_pope(tmp_path / "pope")
    samples = vlm_task.dataset(pope, split="popular")
    assert [(s.id, len(s.target)) for s in samples] == [("COCO_val2014_000000000001", 2), ("COCO_val2014_000000000002", 1)]
    assert tuple(m.name for m in vlm_task.metrics) == (
        "accuracy",
        "agreement",
        "f1",
        "precision",
        "recall",
        "yes-ratio",
        "unparseable",
        "accuracy-original",
        "f1-original",
    )
    assert [s.id for s in vlm_task.dataset(pope / "coco_pope_popular.json")] == [s.id for s in samples]  # the file itself
    with pytest.warns(UserWarning, match=r"1 labelled image\(s\) are absent"):
        vlm_task.dataset(write_seed(tmp_path / "seed"))
    assert tuple(m.name for m in vlm_task.metrics) == (
        "accuracy",
        "agreement",
        "unparseable",
        "accuracy-original",
        "accuracy/Instances Counting",
        "accuracy/Scene Understanding",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError) as err:
        vlm_task.dataset(empty)
    assert str(err.value) == (
        f"no SEED-Bench.json, coco_pope_<split>.json or images in {empty}; "
        "vlm-qa reads SEED-Bench or POPE, or asks label-free questions about images"
    )
    with pytest.raises(ConfigError, match="unknown VQA benchmark 'mme'; use one of auto, seed-bench, pope"):
        vlm_task.dataset(pope, benchmark="mme")
    monkeypatch.setenv("MOCODEC_CACHE", str(tmp_path / "cache"))
    assert len(vlm_task.dataset()) == 6 and "f1" in {m.name for m in vlm_task.metrics}


def test_images_without_questions_get_the_label_free_ones(vlm_task, photos, tmp_path):
    from mocodec.data.questions import LABEL_FREE_QUESTIONS

    folder = write_pope(tmp_path / "pope") / "val2014"  # a plain image folder: no question file in it
    samples = vlm_task.dataset(folder)
    assert [s.id for s in samples] == ["COCO_val2014_000000000001.jpg", "COCO_val2014_000000000002.jpg"]
    assert all(s.target == LABEL_FREE_QUESTIONS for s in samples) and tuple(m.name for m in vlm_task.metrics) == (
        "agreement",
        "unparseable",
    )
    records = vlm_task.evaluate(photos, photos)  # a sweep without targets asks them too
    assert [q["id"] for q in records[0]["questions"]] == [q.id for q in LABEL_FREE_QUESTIONS]
    summary = vlm_task.summarize(records)
    assert summary["agreement"] == 1.0 and summary["accuracy"] is None and summary["f1"] is None


def test_eval_task_sweep_runs_vlm_qa_end_to_end(vlm_task, tmp_path, monkeypatch):
    from mocodec.evaluation.plan import plan_curves
    from mocodec.evaluation.sweep import evaluate

    asked: list[int] = []
    answer = vlm_task.vlm.answer
    monkeypatch.setattr(vlm_task.vlm, "answer", lambda images, prompts: asked.append(len(prompts)) or answer(images, prompts))
    out = tmp_path / "vlm.json"
    evaluate(vlm_task, plan_curves(["jpeg"], ["jpeg=10,90"]), out, write_pope(tmp_path / "pope"), {"split": "popular"})
    doc = json.loads(out.read_text())
    entry = doc["entries"][0]
    assert doc["dataset"]["options"] == {"split": "popular"} and list(doc["metrics"]) == [
        "psnr-rgb",
        "ms-ssim",
        *(m.name for m in vlm_task.metrics),
    ]
    assert entry["results"]["quality"] == [10, 90] and entry["results"]["num_images"] == [2, 2]
    # Two images of different sizes judged one at a time: originals + q10 first, then q90 only.
    assert asked == [2 + 2, 2, 1 + 1, 1]
    for i, quality in enumerate(entry["results"]["quality"]):
        records = [r for r in entry["per_image"] if r["quality"] == quality]
        summary = vlm_task.summarize(records)
        assert [entry["results"][m.name][i] for m in vlm_task.metrics] == [summary[m.name] for m in vlm_task.metrics]


def test_eval_task_cli_without_the_default_vlm_says_what_to_place(cli, tmp_path):
    from huggingface_hub.constants import HF_HUB_CACHE

    run = cli("eval-task", "--task", "vlm-qa", "--codecs", "jpeg", "--out", str(tmp_path / "r.json"))
    assert run.returncode == 2
    cached = Path(HF_HUB_CACHE) / "models--OpenGVLab--InternVL3-1B-hf"
    assert run.stderr.strip().splitlines()[-1] == (
        "mocodec: error: cannot download VLM 'OpenGVLab/InternVL3-1B-hf' from the Hugging Face hub (LocalEntryNotFoundError); "
        f"run `hf download OpenGVLab/InternVL3-1B-hf` where the hub is reachable and copy the cache to {cached}, "
        "or pass the snapshot folder as --weights DIR"
    )
