"""``mocodec experiment`` end to end: the tiny recipe's artefacts, resuming without recomputation,
refusing stale results and runs, and rewriting the report from recorded results alone."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from unittest.mock import Mock

import numpy as np
import pytest
import yaml

import mocodec.evaluation.sweep as sweep
import mocodec.training as training
from mocodec.errors import ConfigError
from mocodec.experiment import BD_COLUMNS, load_recipe, parse_recipe, rewrite_report, run_experiment

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "configs" / "experiments"
TILES = 12  # 256 px tiles of the held-out photographs: astronaut 4, coffee/rocket/motorcycle 2 each, chelsea/clock 1 each


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny recipe run once (shared by the tests below); its output folder."""
    out = tmp_path_factory.mktemp("experiment") / "tiny"
    run_experiment(load_recipe(RECIPES / "tiny.yaml"), out, log=lambda _: None, command="mocodec experiment --config tiny.yaml")
    return out


RUNS = [
    "tiny_mse_lambda0.0018_seed0",
    "tiny_mse_lambda0.18_seed0",
    "tiny_mse+msssim_lambda0.0018_seed0",
    "tiny_mse+msssim_lambda0.18_seed0",
]


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
        ("mse", "trained", 1),
        ("mse+msssim", "trained", 1),
        ("jpeg", "baseline", 1),
    ]
    for curve in task["curves"]:
        for point in curve["points"]:
            assert point["kl"][1] <= point["kl"][0] <= point["kl"][2]  # mean inside its bootstrap interval
    assert summary["files"]["judge"] == {
        "figure": "figures/judge.png",
        "bd_markdown": "tables/bd_judge.md",
        "bd_csv": "tables/bd_judge.csv",
        "results": "results/judge.json",
    }
    assert (out / "figures" / "judge.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rows = list(csv.DictReader(io.StringIO((out / "tables" / "bd_judge.csv").read_text())))
    assert list(rows[0]) == list(BD_COLUMNS)
    assert [(r["curve"], r["metric"]) for r in rows] == [
        ("mse+msssim", "kl"),
        ("jpeg", "kl"),
        ("mse+msssim", "agreement"),
        ("jpeg", "agreement"),
    ]
    table = (out / "tables" / "bd_judge.md").read_text().splitlines()
    assert len(table) == 2 + len(rows) and table[2].startswith("| mse+msssim | kl |")

    report = (out / "report.md").read_text()
    confidence = np.mean([r["confidence"] for r in doc["entries"][0]["per_image"] if r["point"] == "lambda=0.0018"])
    for text in (
        "# Experiment `tiny`",
        "- Command: `mocodec experiment --config tiny.yaml`",
        "2 steps (compared at equal steps), seeds 0",
        f"{TILES} images",
        f"confidence on the originals {confidence:.3f}",
        "](figures/judge.png)",
        "](tables/bd_judge.md)",
        "**inside the noise**",
        "| mse+msssim | bmshj2018-hyperprior q1",
        "after 1 steps",
    ):
        assert text in report
    assert any((out / "wandb").glob("offline-run-*"))  # the evaluation run with the figure
    # report.html: the same curves (with interval bars) and BD rows, and the decoded crops the sweep kept
    page = (out / "report.html").read_text()
    (section,) = json.loads(re.search(r'id="mocodec-report-data">(.*?)</script>', page, re.S).group(1))["sections"]
    assert [(r["curve"], r["metric"], r["verdict"]) for r in section["bd"]["rows"]] == [
        (r["curve"], r["metric"], r["verdict"]) for r in task["bd"]
    ]
    assert len(section["figure"]["data"]) == len(task["curves"]) * len(task["metrics"])
    assert all(trace["error_y"]["array"] for trace in section["figure"]["data"])
    assert len(section["comparison"]["images"]) == 8 and (out / "results" / "judge.crops" / "index.json").is_file()
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
        assert {k: v for k, v in again.items() if k not in ("kl", "encoding_time", "decoding_time")} == {
            k: v for k, v in r.items() if k not in ("kl", "encoding_time", "decoding_time")
        }
        assert again["kl"] == pytest.approx(r["kl"], rel=1e-2, abs=1e-8)


def test_results_of_an_older_format_are_refused_with_the_fix(tiny_run):
    from mocodec.errors import OutputExistsError
    from mocodec.experiment import evaluate

    path = tiny_run / "results" / "judge.json"
    kept = path.read_text()
    # the same results as an eval-task file of version 2 wrote them: PSNR only, while this sweep also records MS-SSIM
    old = {k: v for k, v in json.loads(kept).items() if k not in ("fidelity",)} | {"mocodec": "eval-task", "version": 2}
    path.write_text(json.dumps(old))
    recipe = load_recipe(RECIPES / "tiny.yaml")
    try:
        with pytest.raises(
            OutputExistsError,
            match=rf"^{re.escape(str(path))} holds records of the fidelity metrics psnr-rgb; "
            r"delete it to judge task judge again \(the trained runs are kept\)$",
        ):
            evaluate(recipe, recipe.tasks[0], tiny_run)
    finally:
        path.write_text(kept)


def test_a_run_trained_with_another_configuration_is_refused(tiny_run):
    recipe = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    recipe["training"]["model"]["optimizer"]["init_args"]["lr"] = 0.01
    ran = (tiny_run / "recipe.yaml").read_text()
    with pytest.raises(ConfigError, match=f"^run {RUNS[0]} in .* was trained with another configuration; delete .* to retrain it"):
        run_experiment(parse_recipe(recipe), tiny_run, log=lambda _: None)
    assert (tiny_run / "recipe.yaml").read_text() == ran  # refused before anything was written


def test_report_only_rewrites_the_report_from_the_recorded_results(tiny_run, monkeypatch):
    out = tiny_run
    before = json.loads((out / "summary.json").read_text())
    results = (out / "results" / "judge.json").read_bytes()
    evaluation_runs = len(list((out / "wandb").glob("offline-run-*")))
    for artefact in ("report.md", "report.html", "tables/bd_judge.md", "tables/bd_judge.csv", "figures/judge.png"):
        (out / artefact).unlink()
    trained = Mock(wraps=training.run_cli)
    coded = Mock(wraps=sweep.code_image)
    monkeypatch.setattr(training, "run_cli", trained)
    monkeypatch.setattr(sweep, "code_image", coded)
    command = "mocodec experiment --config tiny.yaml --report-only"
    summary = rewrite_report(load_recipe(RECIPES / "tiny.yaml"), out, log=lambda _: None, command=command)
    assert trained.call_count == 0 and coded.call_count == 0  # nothing trained or judged
    assert (out / "results" / "judge.json").read_bytes() == results
    assert len(list((out / "wandb").glob("offline-run-*"))) == evaluation_runs  # and nothing logged to W&B
    # The same analysis of the same records; the experiment's own facts kept, the rewrite recorded beside them.
    assert json.dumps(summary["tasks"]) == json.dumps(before["tasks"])
    assert {k: summary[k] for k in ("experiment", "code_version", "command", "wall_time", "runs", "files")} == {
        k: before[k] for k in ("experiment", "code_version", "command", "wall_time", "runs", "files")
    }
    assert summary["report_rewritten"]["command"] == command
    assert json.dumps(json.loads((out / "summary.json").read_text())) == json.dumps(summary)
    for artefact in ("report.md", "report.html", "tables/bd_judge.md", "tables/bd_judge.csv", "figures/judge.png"):
        assert (out / artefact).is_file()
    report = (out / "report.md").read_text()
    assert f"- Report rewritten from the recorded results by `{command}`" in report


def test_report_only_needs_the_finished_experiment_of_the_same_recipe(tiny_run, tmp_path):
    data = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    data["bootstrap"] = 20
    ran = tiny_run / "recipe.yaml"
    with pytest.raises(
        ConfigError,
        match=rf"^the recipe differs from {re.escape(str(ran))}, which the results were made with; "
        rf"pass --config {re.escape(str(ran))}$",
    ):
        rewrite_report(parse_recipe(data), tiny_run, log=lambda _: None)
    with pytest.raises(
        ConfigError, match=r"holds no finished experiment \(recipe.yaml and summary.json\); run it without --report-only first$"
    ):
        rewrite_report(load_recipe(RECIPES / "tiny.yaml"), tmp_path / "empty", log=lambda _: None)
