"""``mocodec experiment``: the tiny recipe end to end, resuming without recomputation, recipe
validation, the shipped recipes, and the seed/image bootstrap against known BD values."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

import mocodec.evaluation.sweep as sweep
import mocodec.training as training
from mocodec.errors import ConfigError
from mocodec.evaluation.aggregate import MethodData, analyse
from mocodec.experiment import BD_COLUMNS, load_recipe, parse_recipe, run_experiment

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "configs" / "experiments"
TILES = 12  # 256 px tiles of the held-out photographs: astronaut 4, coffee/rocket/motorcycle 2 each, chelsea/clock 1 each


class Counter:
    """Wraps a function and counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny recipe run once (shared by the tests below); its output folder."""
    out = tmp_path_factory.mktemp("experiment") / "tiny"
    run_experiment(load_recipe(RECIPES / "tiny.yaml"), out, log=lambda _: None, command="mocodec experiment --config tiny.yaml")
    return out


RUNS = ["tiny_mse_lambda0.0018_seed0", "tiny_mse_lambda0.18_seed0", "tiny_mse+msssim_lambda0.0018_seed0", "tiny_mse+msssim_lambda0.18_seed0"]


def test_tiny_recipe_writes_every_artefact(tiny_run):
    out = tiny_run
    for run in RUNS:
        assert (out / "runs" / run / "checkpoints" / "last.ckpt").is_file()
        assert yaml.safe_load((out / "runs" / run / "train.yaml").read_text())["trainer"]["max_steps"] == 2
        done = json.loads((out / "runs" / run / "done.json").read_text())
        assert done["steps"] == 2 and done["checkpoint"] == f"runs/{run}/checkpoints/last.ckpt"
        assert any((out / "runs" / run / "wandb").glob("offline-run-*"))  # every run logged to W&B (offline)
    # Balanced two-term runs log each part's share of the loss; the shares sum to 1.
    shares = json.loads((out / "runs" / RUNS[2] / "done.json").read_text())["shares"]
    assert set(shares) == {"bpp", "mse", "msssim"} and sum(shares.values()) == pytest.approx(1.0, abs=1e-6)

    doc = json.loads((out / "results" / "judge.json").read_text())
    assert [e["name"] for e in doc["entries"]] == ["mse seed0", "mse+msssim seed0", "jpeg"]
    assert doc["dataset"]["num_samples"] == TILES
    for entry in doc["entries"]:
        assert len(entry["per_image"]) == TILES * 2  # two λ (or two JPEG qualities) per curve
        assert {"id", "point", "bpp", "kl", "agreement", "confidence"} <= set(entry["per_image"][0])
    assert list(doc["entries"][0]["points"]) == ["lambda=0.0018", "lambda=0.18"]

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"experiment", "command", "code_version", "wall_time", "runs", "tasks", "files"}
    assert set(summary["runs"]) == set(RUNS)
    (task,) = summary["tasks"]
    assert task["num_images"] == TILES and task["anchor"] == "mse" and set(task["metrics"]) == {"kl", "agreement"}
    assert [(c["name"], c["kind"], c["seeds"]) for c in task["curves"]] == [
        ("mse", "trained", 1), ("mse+msssim", "trained", 1), ("jpeg", "baseline", 1)]
    for curve in task["curves"]:
        for point in curve["points"]:
            assert point["kl"][1] <= point["kl"][0] <= point["kl"][2]  # mean inside its bootstrap interval
    assert summary["files"]["judge"] == {"figure": "figures/judge.png", "bd_markdown": "tables/bd_judge.md",
                                         "bd_csv": "tables/bd_judge.csv", "results": "results/judge.json"}
    assert (out / "figures" / "judge.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rows = list(csv.DictReader(io.StringIO((out / "tables" / "bd_judge.csv").read_text())))
    assert list(rows[0]) == list(BD_COLUMNS)
    assert [(r["curve"], r["metric"]) for r in rows] == [("mse+msssim", "kl"), ("jpeg", "kl"), ("mse+msssim", "agreement"), ("jpeg", "agreement")]
    table = (out / "tables" / "bd_judge.md").read_text().splitlines()
    assert len(table) == 2 + len(rows) and table[2].startswith("| mse+msssim | kl |")

    report = (out / "report.md").read_text()
    confidence = np.mean([r["confidence"] for r in doc["entries"][0]["per_image"] if r["point"] == "lambda=0.0018"])
    for text in ("# Experiment `tiny`", "- Command: `mocodec experiment --config tiny.yaml`", "2 steps (compared at equal steps), seeds 0",
                 f"{TILES} images", f"confidence on the originals {confidence:.3f}", "](figures/judge.png)", "](tables/bd_judge.md)",
                 "**inside the noise**", "| mse+msssim | bmshj2018-hyperprior q1", "after 1 steps"):
        assert text in report
    assert any((out / "wandb").glob("offline-run-*"))  # the evaluation run with the figure
    assert "WANDB_RUN_GROUP" not in os.environ  # the group was set for the training runs only


def test_rerun_recomputes_nothing(tiny_run, monkeypatch):
    out = tiny_run
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/checkpoints/last.ckpt")}
    records = json.loads((out / "results" / "judge.json").read_text())["entries"]
    trained = Counter(training.run_cli)
    coded = Counter(sweep.code_image)
    monkeypatch.setattr(training, "run_cli", trained)
    monkeypatch.setattr(sweep, "code_image", coded)
    run_experiment(load_recipe(RECIPES / "tiny.yaml"), out, log=lambda _: None)
    assert trained.calls == 0 and coded.calls == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "results" / "judge.json").read_text())["entries"] == records


def test_interrupted_run_and_sweep_resume_where_they_stopped(tiny_run, monkeypatch):
    out = tiny_run
    run_dir = out / "runs" / RUNS[0]
    (run_dir / "done.json").unlink()  # as if training stopped after its last checkpoint was written
    results = out / "results" / "judge.json"
    doc = json.loads(results.read_text())
    dropped = doc["entries"][1]["per_image"][:5]  # as if the sweep stopped 5 records short
    doc["entries"][1]["per_image"] = doc["entries"][1]["per_image"][5:]
    results.write_text(json.dumps(doc))
    trained = Counter(training.run_cli)
    coded = Counter(sweep.code_image)
    monkeypatch.setattr(training, "run_cli", trained)
    monkeypatch.setattr(sweep, "code_image", coded)
    run_experiment(load_recipe(RECIPES / "tiny.yaml"), out, log=lambda _: None)
    assert trained.calls == 1 and coded.calls == 5  # one run resumed from last.ckpt (already at step 2), five images coded
    assert json.loads((run_dir / "done.json").read_text())["steps"] == 2
    redone = {(r["id"], r["point"]): r for r in json.loads(results.read_text())["entries"][1]["per_image"]}
    for r in dropped:  # the same codec and judge give the same records (timings aside; batching moves the last float bits)
        again = redone[(r["id"], r["point"])]
        assert {k: v for k, v in again.items() if k not in ("kl", "encoding_time", "decoding_time")} == \
               {k: v for k, v in r.items() if k not in ("kl", "encoding_time", "decoding_time")}
        assert again["kl"] == pytest.approx(r["kl"], rel=1e-2, abs=1e-8)


def test_a_run_trained_with_another_configuration_is_refused(tiny_run):
    recipe = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    recipe["training"]["model"]["optimizer"]["init_args"]["lr"] = 0.01
    with pytest.raises(ConfigError, match=f"^run {RUNS[0]} in .* was trained with another configuration; delete .* to retrain it"):
        run_experiment(parse_recipe(recipe), tiny_run, log=lambda _: None)


def test_typo_in_a_recipe_is_one_line(cli, tmp_path):
    recipe = (RECIPES / "tiny.yaml").read_text().replace("steps: 2", "stpes: 2")
    path = tmp_path / "typo.yaml"
    path.write_text(recipe)
    run = cli("experiment", "--config", str(path), "--out", str(tmp_path / "out"))
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1] == f"mocodec: error: {path}: unknown key 'stpes' in the recipe; did you mean 'steps'?"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r["terms"]["mse"].update(lmbda=[0.1]), "unknown key 'lmbda' in terms.mse; did you mean 'lmbdas'?"),
    (lambda r: r.update(anchor="msssim"), "anchor 'msssim' is not a term; the terms are: mse, mse+msssim"),
    (lambda r: r.update(steps=3, checkpoints=2), "steps (3) must be a multiple of checkpoints (2), so the last checkpoint is the last step"),
    (lambda r: r["training"]["model"].update(lmbda=0.1), "training sets model.lmbda, which the recipe decides per run; set it through codecs, terms or seeds"),
    (lambda r: r["tasks"]["judge"]["options"].update(modle="x"), "tasks.judge: task classification takes no option 'modle'"),
    (lambda r: r["tasks"]["judge"].pop("metrics"), "tasks.judge lacks the key 'metrics'"),
])
def test_recipe_errors(edit, message):
    recipe = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    edit(recipe)
    with pytest.raises(ConfigError) as err:
        parse_recipe(recipe)
    assert str(err.value).startswith(message)


def test_shipped_recipes_load():
    small = load_recipe(RECIPES / "offline_small.yaml")
    assert len(small.runs()) == 18 and len(small.seeds) >= 2 and all(len(t.lmbdas) == 3 for t in small.terms)
    assert [t.label for t in small.terms] == ["mse", "mse+featsim", "msssim"]
    # The judge is not the network the feature term is computed with.
    feature_net = small.terms[1].distortions["ml-featsim"]["model"]
    assert feature_net == "efficientnet-lite0" and small.tasks[0].options["model"] == "efficientnet_lite1"
    assert small.terms[1].balance_warmup is not None and small.tasks[0].metrics[0] == "kl"
    paper = load_recipe(RECIPES / "paper.yaml")
    assert [c.codec for c in paper.codecs] == ["mlicpp", "bmshj2018-hyperprior"]
    assert [(t.label, t.task) for t in paper.tasks] == [
        ("imagenet", "classification"), ("voc", "detection"), ("coco", "detection"), ("seed-bench", "vlm-qa"), ("pope", "vlm-qa")]
    assert paper.terms[1].distortions["ml-clipsim"]["model"] == "ViT-B-32" and len(paper.runs()) == 2 * 2 * 6 * 3


# --------------------------------------------------------------------------- the bootstrap


def _method(name: str, bpp: np.ndarray, kl: np.ndarray, kind: str = "trained") -> MethodData:
    return MethodData(name, kind, [f"p{i}" for i in range(bpp.shape[1])], {"bpp": bpp, "kl": kl})


def test_half_the_rate_at_equal_kl_is_bd_rate_minus_50_percent():
    rng = np.random.default_rng(0)
    # 2 seeds x 3 points x 40 images; KL falls with the rate. The test curve reaches each
    # image's KL at exactly half its bits, in every seed, so every resample's BD-rate is
    # -50 % (a constant shift of log-rate) and the interval collapses onto it.
    bpp = np.tile(np.array([0.2, 0.4, 0.8])[None, :, None], (2, 1, 40)) * rng.uniform(0.8, 1.2, 40)
    kl = np.tile(np.array([0.9, 0.5, 0.2])[None, :, None], (2, 1, 40)) * rng.uniform(0.5, 1.5, 40)
    result = analyse([_method("mse", bpp, kl), _method("half", bpp / 2, kl)], {"kl": False}, "mse", resamples=200)
    (row,) = result["bd"]
    assert row["bd_rate"] == pytest.approx([-50.0, -50.0, -50.0], abs=1e-6)
    assert row["verdict"] == "better than mse" and row["points"] == 3


def test_a_difference_within_seed_noise_is_inside_the_noise():
    rng = np.random.default_rng(1)
    bpp = np.tile(np.array([0.2, 0.4, 0.8])[None, :, None], (3, 1, 30))
    kl = np.tile(np.array([0.9, 0.5, 0.2])[None, :, None], (3, 1, 30))
    # Another term whose three seeds scatter by ±20 % of the rate around the anchor's.
    other = bpp * np.array([0.8, 1.0, 1.2])[:, None, None]
    result = analyse([_method("mse", bpp, kl), _method("other", other, kl)], {"kl": False}, "mse", resamples=300)
    (row,) = result["bd"]
    low, high = row["bd_rate"][1:]
    assert low < 0 < high and row["verdict"] == "inside the noise"
    # The point estimate averages the seeds' rates (mean factor 1.0): no difference.
    assert row["bd_rate"][0] == pytest.approx(0.0, abs=1e-6)
    curve = result["curves"][1]
    assert curve["seeds"] == 3 and curve["points"][0]["bpp"][0] == pytest.approx(0.2)
    assert curve["points"][0]["bpp"][1] < 0.2 < curve["points"][0]["bpp"][2]
