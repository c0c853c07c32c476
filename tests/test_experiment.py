"""``mocodec experiment``: the tiny recipe end to end, resuming without recomputation, recipe
validation, the shipped recipes, and the seed/image bootstrap against known BD values."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from pathlib import Path
from unittest.mock import Mock

import numpy as np
import pytest
import torch
import yaml

import mocodec.evaluation.sweep as sweep
import mocodec.training as training
from mocodec.errors import ConfigError, MocodecError
from mocodec.evaluation.aggregate import MethodData, analyse
from mocodec.experiment import BD_COLUMNS, load_recipe, parse_recipe, run_experiment, train_runs

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "configs" / "experiments"
TILES = 12  # 256 px tiles of the held-out photographs: astronaut 4, coffee/rocket/motorcycle 2 each, chelsea/clock 1 each


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
    trained = Mock(wraps=training.run_cli)
    coded = Mock(wraps=sweep.code_image)
    monkeypatch.setattr(training, "run_cli", trained)
    monkeypatch.setattr(sweep, "code_image", coded)
    run_experiment(load_recipe(RECIPES / "tiny.yaml"), out, log=lambda _: None)
    assert trained.call_count == 0 and coded.call_count == 0
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
    trained = Mock(wraps=training.run_cli)
    coded = Mock(wraps=sweep.code_image)
    monkeypatch.setattr(training, "run_cli", trained)
    monkeypatch.setattr(sweep, "code_image", coded)
    run_experiment(load_recipe(RECIPES / "tiny.yaml"), out, log=lambda _: None)
    assert trained.call_count == 1 and coded.call_count == 5  # one run resumed from last.ckpt (already at step 2), five images coded
    assert json.loads((run_dir / "done.json").read_text())["steps"] == 2
    redone = {(r["id"], r["point"]): r for r in json.loads(results.read_text())["entries"][1]["per_image"]}
    for r in dropped:  # the same codec and judge give the same records (timings aside; batching moves the last float bits)
        again = redone[(r["id"], r["point"])]
        assert {k: v for k, v in again.items() if k not in ("kl", "encoding_time", "decoding_time")} == \
               {k: v for k, v in r.items() if k not in ("kl", "encoding_time", "decoding_time")}
        assert again["kl"] == pytest.approx(r["kl"], rel=1e-2, abs=1e-8)


def test_results_of_an_older_format_are_refused_with_the_fix(tiny_run):
    from mocodec.errors import OutputExistsError
    from mocodec.experiment import evaluate

    path = tiny_run / "results" / "judge.json"
    kept = path.read_text()
    path.write_text(json.dumps({"mocodec": "eval-task", "version": 1, "entries": []}))
    recipe = load_recipe(RECIPES / "tiny.yaml")
    try:
        with pytest.raises(OutputExistsError, match=rf"^{re.escape(str(path))} is an eval-task results file of version 1, not 2; "
                                                    r"delete it to judge task judge again \(the trained runs are kept\)$"):
            evaluate(recipe, recipe.tasks[0], tiny_run)
    finally:
        path.write_text(kept)


def test_a_run_trained_with_another_configuration_is_refused(tiny_run):
    recipe = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    recipe["training"]["model"]["optimizer"]["init_args"]["lr"] = 0.01
    with pytest.raises(ConfigError, match=f"^run {RUNS[0]} in .* was trained with another configuration; delete .* to retrain it"):
        run_experiment(parse_recipe(recipe), tiny_run, log=lambda _: None)


def _pretraining_recipe(**pretrain):
    """The tiny recipe with one term, whose runs start from a 2-step MSE base per seed."""
    recipe = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    recipe["codecs"]["tiny"]["pretrain"] = {"steps": 2, "lmbda": 0.0483, **pretrain}
    del recipe["terms"]["mse+msssim"]
    return recipe


def test_pretrained_base_and_parallel_runs(tmp_path):
    from mocodec.training import CodecModule
    from mocodec.weights import load_checkpoint

    recipe = parse_recipe(_pretraining_recipe())
    (base,) = recipe.pretraining_runs()
    assert base.name == "tiny_pretrain_seed0" and base.steps(recipe) == 2 and base.base is None
    assert [r.base for r in recipe.runs()] == [base, base]
    out = tmp_path / "out"
    done = train_runs(recipe.pretraining_runs(), recipe, out, log=lambda _: None)
    lines = []
    done |= train_runs(recipe.runs(), recipe, out, log=lines.append, jobs=2)  # both compared runs at once
    assert lines[0].startswith("training 2 runs, 2 at a time with ")
    finished = [line.split()[:3] for line in lines[1:]]  # "[k/2] RUN done (N s)", as each run finishes
    assert [f[0] for f in finished] == ["[1/2]", "[2/2]"] and {f[1] for f in finished} == set(RUNS[:2])
    assert all(f[2] == "done" for f in finished)
    assert list(done) == ["tiny_pretrain_seed0", RUNS[0], RUNS[1]] and all(d["steps"] == 2 for d in done.values())
    base_ckpt = out / "runs" / base.name / "checkpoints" / "last.ckpt"
    base_weights = {k.removeprefix("codec."): v for k, v in load_checkpoint(base_ckpt)["state_dict"].items()}
    for run in RUNS[:2]:
        config = yaml.safe_load((out / "runs" / run / "train.yaml").read_text())
        assert config["model"]["init_weights"] == str(base_ckpt)
        assert "`Trainer.fit` stopped: `max_steps=2` reached" in (out / "runs" / run / "train.log").read_text()
        # The run's codec starts from the base's weights.
        model = {k: v for k, v in config["model"].items() if k not in ("optimizer", "aux_optimizer")}
        start = CodecModule(**model).codec.state_dict()
        transforms = [k for k in start if k.startswith(("g_a.", "g_s.", "h_a.", "h_s."))]
        assert transforms and all(torch.equal(start[k], base_weights[k]) for k in transforms)
    # A finished set is reused, however many jobs.
    assert train_runs(recipe.runs(), recipe, out, log=lambda _: None, jobs=2) == {r: done[r] for r in RUNS[:2]}


def test_run_digests_follow_the_base_not_the_folder(tmp_path):
    recipe = parse_recipe(_pretraining_recipe())
    run = recipe.runs()[0]
    assert run.digest(recipe, tmp_path / "a") == run.digest(recipe, tmp_path / "elsewhere")
    other = parse_recipe(_pretraining_recipe(lmbda=0.0018))
    assert other.runs()[0].digest(other, tmp_path / "a") != run.digest(recipe, tmp_path / "a")
    # Without pretraining the digest is the one earlier results folders recorded: the config without its folder.
    plain = load_recipe(RECIPES / "tiny.yaml")
    config = plain.runs()[0].config(plain, tmp_path)
    del config["trainer"]["default_root_dir"]
    assert plain.runs()[0].digest(plain, tmp_path) == hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def test_jobs_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match=r"^--jobs must be a whole number >= 1, got 0$"):
        run_experiment(load_recipe(RECIPES / "tiny.yaml"), tmp_path / "out", log=lambda _: None, jobs=0)
    assert not (tmp_path / "out").exists()


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
    (lambda r: r.update(checkpoints=2) or r["codecs"]["tiny"].update(pretrain={"steps": 3, "lmbda": 0.01}),
     "codecs.tiny.pretrain.steps (3) must be a multiple of checkpoints (2)"),
    (lambda r: r["codecs"]["tiny"].update(pretrain={"step": 4, "lmbda": 0.01}), "unknown key 'step' in codecs.tiny.pretrain; did you mean 'steps'?"),
    (lambda r: r["codecs"]["tiny"].update(pretrain={"steps": 4, "lmbda": -1}), "codecs.tiny.pretrain needs steps >= 1 and lmbda > 0"),
    (lambda r: r["codecs"]["tiny"].update(pretrain={"steps": 4, "lmbda": 0.01, "distortions": {"mes": 1}}), "unknown distortion 'mes'"),
])
def test_recipe_errors(edit, message):
    recipe = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    edit(recipe)
    with pytest.raises(MocodecError) as err:
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
