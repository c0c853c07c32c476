"""Training in stretches with the resumable state kept in a folder that travels (``--minutes``, ``--state``)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
import yaml

import mocodec.training as training
from mocodec.errors import ConfigError
from mocodec.experiment import compared_runs, parse_recipe
from mocodec.experiment.runs import Stretch, train_runs
from mocodec.experiment.state import PROGRESS, STATE_KEY, steps_of, training_clock, trim, untrim
from mocodec.weights import load_checkpoint

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "experiments"


def _recipe(steps: int, lmbdas=(0.0018,)):
    recipe = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    recipe["steps"] = steps
    del recipe["terms"]["mse+msssim"]
    recipe["terms"]["mse"]["lmbdas"] = list(lmbdas)
    return parse_recipe(recipe)


def test_a_kept_checkpoint_rounds_only_the_optimiser_moments():
    weight = torch.randn(64, 3)
    checkpoint = {
        "global_step": 7,
        "state_dict": {"codec.w": weight},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(7.0), "exp_avg": torch.randn(64, 3), "exp_avg_sq": torch.rand(64, 3)}}}],
    }
    kept = trim(checkpoint)
    moments = kept["optimizer_states"][0]["state"][0]
    assert moments["exp_avg"].dtype == torch.bfloat16 and moments["exp_avg_sq"].dtype == torch.bfloat16
    assert moments["step"].dtype == torch.float32 and kept["state_dict"]["codec.w"] is weight and kept[STATE_KEY]
    back = untrim(kept)
    original = checkpoint["optimizer_states"][0]["state"][0]
    for name in ("exp_avg", "exp_avg_sq"):
        restored = back["optimizer_states"][0]["state"][0][name]
        assert restored.dtype == torch.float32 and torch.allclose(restored, original[name], rtol=2**-8, atol=0)
    assert STATE_KEY not in back and back["global_step"] == 7


def test_a_stretch_stops_at_its_deadline_and_a_fresh_machine_resumes_from_the_kept_state(tmp_path):
    recipe = _recipe(steps=100_000)  # never reached: the deadline stops it
    (run,) = compared_runs(recipe)
    state, first = tmp_path / "state", tmp_path / "machine1"
    record = train_runs([run], recipe, first, log=lambda _: None, stretch=Stretch(time.time() + 2, state, min_seconds=0))
    stopped = record[run.name]
    assert stopped["unfinished"] and 0 < stopped["steps"] < 100_000 and stopped["of"] == 100_000
    kept = state / f"{run.name}.ckpt"
    assert steps_of(kept) == stopped["steps"] and not (first / "runs" / run.name / "done.json").exists()
    assert load_checkpoint(kept)["optimizer_states"][0]["state"][0]["exp_avg"].dtype == torch.bfloat16
    shutil.rmtree(first)  # the machine is gone; the state folder (committed) is what remains
    second = tmp_path / "machine2"
    lines = []
    # Long enough to get past start-up (a resumed run restarts its epoch's loader before its first step).
    again = train_runs([run], recipe, second, log=lines.append, stretch=Stretch(time.time() + 15, state, min_seconds=0))[run.name]
    assert any(f"restored step {stopped['steps']}" in line for line in lines)
    assert again["unfinished"] and again["steps"] > stopped["steps"]  # it went on from the kept step, not from 0
    assert steps_of(kept) == again["steps"]
    progress = yaml.safe_load((second / "runs" / run.name / "progress.json").read_text())
    assert progress["wall_time"] > 0
    # No time left: the run is not started and nothing is lost.
    late = train_runs([run], recipe, second, log=lambda _: None, stretch=Stretch(time.time() + 10, state))[run.name]
    assert late["unfinished"] and late["steps"] == again["steps"]


def test_a_finished_run_is_reused_from_the_kept_state_and_another_configuration_is_refused(tmp_path, monkeypatch):
    recipe = _recipe(steps=2)
    (run,) = compared_runs(recipe)
    state = tmp_path / "state"
    done = train_runs([run], recipe, tmp_path / "machine1", log=lambda _: None, stretch=Stretch(state_dir=state))[run.name]
    assert done["steps"] == 2 and not done.get("unfinished")
    trained = load_checkpoint(tmp_path / "machine1" / "runs" / run.name / "checkpoints" / "last.ckpt")
    assert load_checkpoint(state / f"{run.name}.ckpt")["optimizer_states"] == []  # it never resumes: weights and record only
    monkeypatch.setattr(training, "run_cli", lambda argv: pytest.fail("a finished run must not train again"))
    reused = train_runs([run], recipe, tmp_path / "machine2", log=lambda _: None, stretch=Stretch(state_dir=state))[run.name]
    assert reused == done
    restored = load_checkpoint(tmp_path / "machine2" / "runs" / run.name / "checkpoints" / "last.ckpt")
    assert restored["global_step"] == 2 and restored.keys() == trained.keys()
    assert all(torch.equal(restored["state_dict"][k], v) for k, v in trained["state_dict"].items())
    other = _recipe(steps=3)  # the same run name, another configuration: its kept state is not this run's
    with pytest.raises(ConfigError, match=f"the state kept for run {run.name} in .* was trained with another configuration"):
        train_runs(compared_runs(other), other, tmp_path / "machine3", log=lambda _: None, stretch=Stretch(state_dir=state))


def test_where_a_run_trains_is_not_what_it_is(tmp_path, monkeypatch):
    """--accelerator moves a stretch (to a GPU, or back): the run's config says so, its digest and kept state do not."""
    recipe = _recipe(steps=2)
    (run,) = compared_runs(recipe)
    state, first = tmp_path / "state", tmp_path / "machine1"
    done = train_runs([run], recipe, first, log=lambda _: None, stretch=Stretch(state_dir=state, accelerator="auto"))[run.name]
    written = yaml.safe_load((first / "runs" / run.name / "train.yaml").read_text())
    assert written["trainer"]["accelerator"] == "auto" != recipe.training["trainer"]["accelerator"]
    assert done["config_digest"] == run.digest(recipe, first)
    monkeypatch.setattr(training, "run_cli", lambda argv: pytest.fail("a finished run must not train again"))
    assert train_runs([run], recipe, tmp_path / "machine2", log=lambda _: None, stretch=Stretch(state_dir=state))[run.name] == done


@pytest.mark.parametrize("minutes", [0, -5])
def test_a_stretch_of_no_time_is_refused(minutes):
    with pytest.raises(ConfigError, match="--minutes must be a positive number of minutes"):
        Stretch.of(minutes)


def test_an_experiment_whose_time_is_up_judges_nothing_and_says_how_to_go_on(tmp_path):
    from mocodec.experiment import run_experiment

    recipe = _recipe(steps=2, lmbdas=(0.0018, 0.18))
    lines = []
    spent = Stretch(time.time() - 1, tmp_path / "state", min_seconds=0)  # no time left: no run starts
    assert run_experiment(recipe, tmp_path / "out", log=lines.append, stretch=spent) is None
    assert lines[-1].startswith("time's up: 2 run(s) unfinished (tiny_mse_lambda0.0018_seed0 0/2, tiny_mse_lambda0.18_seed0 0/2)")
    assert lines[-1].endswith(f"state kept in {tmp_path / 'state'}; rerun the same command to go on")
    assert not (tmp_path / "out" / "results").exists() and not (tmp_path / "out" / "summary.json").exists()


def test_the_deadline_callback_stops_only_once_its_time_has_come():
    from types import SimpleNamespace

    from mocodec.training.stopping import StopAtDeadline

    for deadline, stops in [(time.time() - 1, True), (time.time() + 3600, False), (None, False)]:
        trainer = SimpleNamespace(should_stop=False)
        StopAtDeadline(deadline).on_train_batch_end(trainer, None, None, None, 0)
        assert trainer.should_stop is stops


def test_the_training_clock_counts_into_the_record_while_a_run_trains(tmp_path):
    """A run killed with its machine keeps the time it trained up to the last tick (no record at the end then)."""
    (tmp_path / PROGRESS).write_text(json.dumps({"config_digest": "abc", "wall_time": 100.0}))
    with training_clock(tmp_path, "abc", interval=0.02) as progress:
        time.sleep(0.3)
        during = json.loads((tmp_path / PROGRESS).read_text())  # what a kill at this point would leave
        assert during["config_digest"] == "abc" and 100.1 < during["wall_time"] < 100.3
    assert progress["wall_time"] >= 100.3 and json.loads((tmp_path / PROGRESS).read_text()) == progress
    (tmp_path / "fresh").mkdir()
    with training_clock(tmp_path / "fresh", "def", interval=5) as fresh:  # a run's first stretch: no record yet
        pass
    assert fresh["config_digest"] == "def" and 0 <= fresh["wall_time"] < 1
