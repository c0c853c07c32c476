"""Training runs of a recipe: bases and parallel runs, digests, --jobs, a killed worker."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

import mocodec.experiment.runs as runs
from mocodec.errors import ConfigError, MocodecError
from mocodec.experiment import compared_runs, load_recipe, parse_recipe, pretraining_runs, run_experiment, train_runs

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "configs" / "experiments"
RUNS = ["tiny_mse_lambda0.0018_seed0", "tiny_mse_lambda0.18_seed0"]


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
    (base,) = pretraining_runs(recipe)
    assert base.name == "tiny_pretrain_seed0" and base.steps(recipe) == 2 and base.base(recipe) is None
    assert [r.base(recipe) for r in compared_runs(recipe)] == [base, base]
    out = tmp_path / "out"
    done = train_runs(pretraining_runs(recipe), recipe, out, log=lambda _: None)
    lines = []
    done |= train_runs(compared_runs(recipe), recipe, out, log=lines.append, jobs=2)  # both compared runs at once
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
    assert train_runs(compared_runs(recipe), recipe, out, log=lambda _: None, jobs=2) == {r: done[r] for r in RUNS[:2]}


def test_run_digests_follow_the_base_not_the_folder(tmp_path):
    recipe = parse_recipe(_pretraining_recipe())
    run = compared_runs(recipe)[0]
    assert run.digest(recipe, tmp_path / "a") == run.digest(recipe, tmp_path / "elsewhere")
    other = parse_recipe(_pretraining_recipe(lmbda=0.0018))
    assert compared_runs(other)[0].digest(other, tmp_path / "a") != run.digest(recipe, tmp_path / "a")
    # Without pretraining the digest is the one earlier results folders recorded: the config without its folder.
    plain = load_recipe(RECIPES / "tiny.yaml")
    config = compared_runs(plain)[0].config(plain, tmp_path)
    del config["trainer"]["default_root_dir"]
    assert (
        compared_runs(plain)[0].digest(plain, tmp_path)
        == hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
    )


def test_jobs_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match=r"^--jobs must be a whole number >= 1, got 0$"):
        run_experiment(load_recipe(RECIPES / "tiny.yaml"), tmp_path / "out", log=lambda _: None, jobs=0)
    assert not (tmp_path / "out").exists()


def test_the_recipe_reads_as_it_did_when_offline_small_was_trained(tmp_path):
    # Every run's config digest is the one its done.json recorded: the same configs, so the same runs.
    out = REPO / "docs" / "experiments" / "offline_small"
    recipe = load_recipe(out / "recipe.yaml")
    recorded = {name: done["config_digest"] for name, done in json.loads((out / "summary.json").read_text())["runs"].items()}
    assert {r.name: r.digest(recipe, tmp_path) for r in pretraining_runs(recipe) + compared_runs(recipe)} == recorded


def test_a_killed_worker_says_where_the_logs_are_and_that_a_rerun_resumes(tmp_path, monkeypatch):
    def killed(fn, calls, workers, *, on_done=None, crashed):  # as run_in_workers reports a worker that died
        raise MocodecError(crashed)

    monkeypatch.setattr(runs, "run_in_workers", killed)
    recipe = load_recipe(RECIPES / "tiny.yaml")
    logs = re.escape(str(tmp_path / "runs" / "<run>" / "train.log"))
    with pytest.raises(
        MocodecError,
        match=rf"^a training worker stopped abruptly \(killed, or out of memory\?\); "
        rf"the unfinished runs' output is in {logs}; rerun the same command to resume$",
    ):
        train_runs(compared_runs(recipe), recipe, tmp_path, log=lambda _: None, jobs=2)


def _fine_tuning_recipe(**term):
    """The tiny recipe whose second term is fine-tuned from the MSE runs (``start_from``)."""
    recipe = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    recipe["terms"]["mse+msssim"].update({"start_from": "mse", "steps": 1, **term})
    return recipe


def test_a_term_fine_tuned_from_another_term_s_runs(tmp_path):
    from mocodec.experiment.runs import training_phases
    from mocodec.weights import load_checkpoint

    recipe = parse_recipe(_fine_tuning_recipe())
    mse, tuned = compared_runs(recipe)[:2], compared_runs(recipe)[2:]
    assert [[r.name for r in phase] for phase in training_phases(recipe)] == [[r.name for r in mse], [r.name for r in tuned]]
    assert [r.base(recipe) for r in tuned] == mse and [r.steps(recipe) for r in tuned] == [1, 1]
    out = tmp_path / "out"
    for phase in training_phases(recipe):
        train_runs(phase, recipe, out, log=lambda _: None)
    for run, base in zip(tuned, mse):
        config = yaml.safe_load((out / "runs" / run.name / "train.yaml").read_text())
        base_ckpt = out / "runs" / base.name / "checkpoints" / "last.ckpt"
        assert config["model"]["init_weights"] == str(base_ckpt) and config["trainer"]["max_steps"] == 1
        assert load_checkpoint(out / "runs" / run.name / "checkpoints" / "last.ckpt")["global_step"] == 1
    # Its digest follows its base: retraining the base otherwise makes it another run.
    other = parse_recipe({**_fine_tuning_recipe(), "steps": 4})
    assert compared_runs(other)[2].digest(other, out) != tuned[0].digest(recipe, out)


@pytest.mark.parametrize(
    ("term", "message"),
    [
        ({"start_from": "msse"}, "terms.mse+msssim.start_from must name another term to fine-tune from, got 'msse'; the other terms: mse"),
        ({"start_from": "mse+msssim"}, "terms.mse+msssim.start_from must name another term to fine-tune from, got 'mse+msssim'"),
        ({"lmbdas": [0.0018, 0.05]}, "terms.mse+msssim.start_from: term mse has no run at λ 0.05 to start from"),
        ({"steps": 0}, "terms.mse+msssim.steps must be >= 1 (or null: the recipe's steps), got 0"),
    ],
)
def test_a_term_s_start_is_checked(term, message):
    with pytest.raises(ConfigError) as err:
        parse_recipe(_fine_tuning_recipe(**term))
    assert str(err.value).startswith(message)


def test_terms_that_start_from_each_other_are_refused():
    recipe = _fine_tuning_recipe()
    recipe["terms"]["mse"]["start_from"] = "mse+msssim"
    with pytest.raises(ConfigError, match="start from each other in a cycle"):
        parse_recipe(recipe)
