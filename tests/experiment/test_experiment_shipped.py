"""Every shipped recipe runs: offline_small, paper, imagenet_terms, machine_codec and its pilot end to end at test size (their codecs, terms,
bases and baselines; tiny widths, 2 steps, the tiny random judge), paper as shipped fails offline in
one line, and the committed offline_small report is what the analysis makes of its committed results.
(tiny.yaml runs as it is in test_experiment_pipeline.py.)"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from mocodec.codecs import CODECS
from mocodec.experiment import compared_runs, load_recipe, parse_recipe, pretraining_runs, rewrite_report, run_experiment, train_run
from mocodec.losses import DISTORTIONS, RateDistortionLoss
from mocodec.tasks import TASKS

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "configs" / "experiments"
COMMITTED = REPO / "docs" / "experiments" / "offline_small"
TILES = 8  # 128 px tiles of the held-out photographs, one or two per photograph


def at_test_size(data: dict[str, Any]) -> dict[str, Any]:
    """A shipped recipe at test size: its codecs, terms, bases and baselines with the registries' test widths
    (tiny codecs, random-init distortion backbones), the first seed, two λ per term, 2 steps per run, tiny
    crops on the CPU, and the tiny random judge on 8 small tiles for its tasks."""
    data = copy.deepcopy(data)
    for codec in data["codecs"].values():
        codec.update(kwargs=CODECS.meta(codec["codec"])["test_kwargs"], init_weights=None)  # published weights are not here
        if codec.get("qualities"):
            codec["qualities"] = codec["qualities"][:2]  # one per kept λ
        if codec.get("pretrain"):
            codec["pretrain"]["steps"] = 2
    for term in data["terms"].values():
        term["lmbdas"] = term["lmbdas"][:2]
        term["distortions"] = {
            name: {**spec, **DISTORTIONS.meta(name).get("test_kwargs", {})} if isinstance(spec, dict) else spec
            for name, spec in term["distortions"].items()
        }
    training = data["training"]
    training["trainer"].update(
        accelerator="cpu", devices=1, log_every_n_steps=1, num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False
    )
    training["data"] = {"crop_size": 64, "val_crop_size": 64, "batch_size": 2, "val_batch_size": 2, "num_workers": 0, "embedded_repeats": 1}
    metrics = [m for task in data["tasks"].values() for m in task["metrics"] if m in ("kl", "agreement", "psnr-rgb")]
    data["tasks"] = {
        "judge": {
            "task": "classification",
            "options": TASKS.meta("classification")["test_kwargs"],
            "dataset_options": {"tile": 128, "stride": 512},
            "metrics": list(dict.fromkeys(metrics or ["kl", "agreement"])),
        }
    }
    data.update(seeds=data["seeds"][:1], steps=2, checkpoints=1, bootstrap=20, wandb=False)
    return data


# The paper's and the pilot's (8 runs each) are the slowest: `make test-all` runs them, the default suite the others.
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "name",
    [
        "offline_small",
        pytest.param("paper", marks=SLOW),
        "imagenet_terms",
        "machine_codec",
        pytest.param("machine_codec_pilot", marks=SLOW),
    ],
)
def test_shipped_recipe_runs_at_test_size(name, tmp_path):
    shipped = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
    recipe = parse_recipe(at_test_size(shipped))
    assert [c.codec for c in recipe.codecs] == [c["codec"] for c in shipped["codecs"].values()]
    assert [t.label for t in recipe.terms] == list(shipped["terms"])
    summary = run_experiment(recipe, tmp_path / name, log=lambda _: None)
    assert set(summary["runs"]) == {r.name for r in pretraining_runs(recipe) + compared_runs(recipe)}
    assert all(done["steps"] == 2 for done in summary["runs"].values())
    (task,) = summary["tasks"]
    assert task["num_images"] == TILES
    methods = [recipe.method(c, t) for c in recipe.codecs for t in recipe.terms]
    assert [c["name"] for c in task["curves"]] == methods + list(shipped["baselines"])
    assert len(task["bd"]) == (len(methods) + len(shipped["baselines"]) - 1) * len(task["metrics"])
    assert all(row["verdict"] for row in task["bd"])
    assert (tmp_path / name / "report.md").is_file() and (tmp_path / name / "figures" / "judge.png").is_file()


def pilot_with_ml_clipsim() -> tuple[dict[str, Any], list[str]]:
    """The pilot recipe with the one key a user with CLIP weights changes: ``ml-featsim`` renamed ``ml-clipsim``."""
    recipe = yaml.safe_load((RECIPES / "machine_codec_pilot.yaml").read_text())
    feature_terms = [label for label, term in recipe["terms"].items() if "ml-featsim" in term["distortions"]]
    for label in feature_terms:
        distortions = recipe["terms"][label]["distortions"]
        distortions["ml-clipsim"] = distortions.pop("ml-featsim")
    return recipe, feature_terms


def test_the_machine_codec_pilot_s_feature_terms_are_ml_clipsim_terms_by_their_name_alone():
    # Issue 25: the ML-CLIPSim recipe, for users who have CLIP weights, is the shipped one with one key renamed.
    renamed, feature_terms = pilot_with_ml_clipsim()
    assert len(feature_terms) == 3
    recipe = parse_recipe(at_test_size(renamed))  # the registry's tiny random ViT-B-32 in place of the openai weights
    codec = torch.nn.Conv2d(3, 3, 3, padding=1)  # a stand-in codec: what matters is the loss it trains with
    x = torch.rand(2, 3, 64, 64)
    for term in (t for t in recipe.terms if t.label in feature_terms):
        loss = RateDistortionLoss(term.lmbdas[0], term.distortions, term.balance_warmup)
        clipsim = loss.terms["ml_clipsim"]
        assert clipsim.score_name == "ml-clipsim" and clipsim.resize_mode == "resize"  # 'auto' for a ViT
        codec.zero_grad()
        out = loss({"x_hat": codec(x), "likelihoods": {"y": torch.full_like(x, 0.5)}}, x)
        out["loss"].backward()
        assert torch.isfinite(out["loss"]) and codec.weight.grad.abs().sum() > 0, term.label


@SLOW
def test_the_ml_clipsim_pilot_trains(tmp_path):
    renamed, feature_terms = pilot_with_ml_clipsim()
    recipe = parse_recipe(at_test_size(renamed))
    (run,) = [r for r in compared_runs(recipe) if r.term.label == feature_terms[0] and r.lmbda == r.term.lmbdas[0]]
    done = train_run(run, recipe, tmp_path, log=lambda _: None)
    assert done["steps"] == 2
    assert done["shares"]["ml_clipsim"] > 0
    trained = yaml.safe_load((tmp_path / "runs" / run.name / "train.yaml").read_text())["model"]["distortions"]
    assert trained["ml-clipsim"]["resize_mode"] == "auto" and "ml-featsim" not in trained


def test_paper_recipe_as_shipped_fails_offline_in_one_line(cli, tmp_path):
    # It needs a GPU, weights and datasets (see its header); offline the first missing one is named.
    load_recipe(RECIPES / "paper.yaml")  # valid as a recipe
    run = cli("experiment", "--config", str(RECIPES / "paper.yaml"), "--out", str(tmp_path / "paper"))
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1] == "mocodec: error: checkpoint /weights/mlicpp_mse_q3.pth.tar does not exist; check the path"


def test_committed_offline_small_report_is_the_analysis_of_its_results(tmp_path):
    # docs/experiments/offline_small keeps no checkpoints: its report is rewritten from its per-image results
    # (`mocodec experiment --config docs/experiments/offline_small/recipe.yaml --out docs/experiments/offline_small --report-only`).
    out = tmp_path / "offline_small"
    shutil.copytree(COMMITTED, out)
    committed = json.loads((COMMITTED / "summary.json").read_text())
    summary = rewrite_report(
        load_recipe(COMMITTED / "recipe.yaml"), out, log=lambda _: None, command=committed["report_rewritten"]["command"]
    )
    assert json.dumps(summary["tasks"]) == json.dumps(committed["tasks"])
    for path in ("report.md", "tables/bd_lite1.md", "tables/bd_lite1.csv"):
        assert (out / path).read_text().replace(
            summary["report_rewritten"]["code_version"], committed["report_rewritten"]["code_version"]
        ) == (COMMITTED / path).read_text(), f"{path} is out of date: rewrite it with --report-only"
    # The trained curves and JPEG overlap the anchor's metric range too little to compare (the figure is the honest reading).
    kl = [row for row in summary["tasks"][0]["bd"] if row["metric"] == "kl"]
    assert [(row["curve"], row["verdict"]) for row in kl] == [
        ("mse+featsim", "not comparable"),
        ("msssim", "not comparable"),
        ("jpeg", "not comparable"),
        ("webp", "not comparable"),
    ]
