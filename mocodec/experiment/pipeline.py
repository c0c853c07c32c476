"""The whole experiment in order: train, judge, analyse, report (:func:`run_experiment`).

:func:`rewrite_report` runs the last two steps alone on a results folder's recorded
per-image results (``mocodec experiment --report-only``): the figures, tables, summary and
report follow the current analysis without training or judging anything again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from mocodec.errors import ConfigError, OutputExistsError
from mocodec.evaluation import sweep
from mocodec.evaluation.results import read_document
from mocodec.evaluation.sweep import Progress, create_task_from_options
from mocodec.experiment.analysis import analyse_task, plan_task_curves
from mocodec.experiment.recipe import RECIPE_VERSION, Recipe, TaskEntry, load_recipe, recipe_data
from mocodec.experiment.report import log_to_wandb, write_artefacts
from mocodec.experiment.runs import (
    WHOLE_RUNS,
    Log,
    Stretch,
    compared_runs,
    finished_runs,
    pretraining_runs,
    train_runs,
    training_phases,
    unfinished,
)
from mocodec.files import atomic_write_json, atomic_write_text
from mocodec.tasks import task_class
from mocodec.tasks.base import Task
from mocodec.utils.provenance import code_version
from mocodec.utils.workers import check_processes

KEEP_CROPS = 8  # images per task whose decoded crops report.html compares


def run_experiment(
    recipe: Recipe,
    out: str | os.PathLike,
    *,
    log: Log = print,
    progress: Progress | None = None,
    command: str | None = None,
    jobs: int = 1,
    stretch: Stretch = WHOLE_RUNS,
) -> dict[str, Any] | None:
    """Train, evaluate, analyse and report (:mod:`mocodec.experiment`); returns ``summary.json``'s content.

    ``command``: the command line that ran it, quoted in the report. ``jobs``: training runs
    at once (:func:`~mocodec.experiment.runs.train_runs`). ``stretch``: train until its deadline
    only, keeping the runs' state where it says (:class:`~mocodec.experiment.runs.Stretch`); when
    the deadline stops a run, nothing is judged and None is returned: rerun to go on.
    """
    check_processes(jobs, "--jobs")
    out = Path(out)
    finished_runs(pretraining_runs(recipe) + compared_runs(recipe), recipe, out)  # refuse stale runs before writing anything
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "recipe.yaml", yaml.safe_dump(recipe_data(recipe), sort_keys=False))
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"wall_time": {"training": 0.0, "evaluation": 0.0}}
    started = time.monotonic()
    try:
        done = {}
        for phase in training_phases(recipe):  # the bases first: the runs of the next phase start from them
            done |= train_runs(phase, recipe, out, log, jobs, stretch)
            stopped = unfinished(done)
            if stopped:
                state["wall_time"]["training"] += time.monotonic() - started
                started = None
                steps = ", ".join(f"{r['run']} {r['steps']}/{r['of']}" for r in stopped)
                kept = f"; state kept in {stretch.state_dir}" if stretch.state_dir is not None else ""
                log(f"time's up: {len(stopped)} run(s) unfinished ({steps}){kept}; rerun the same command to go on")
                return None
        state["wall_time"]["training"] += time.monotonic() - started
        started = time.monotonic()
        analyses = []
        for task_entry in recipe.tasks:
            log(f"evaluating {task_entry.label} ({task_entry.task})")
            task, doc = evaluate(recipe, task_entry, out, progress)
            analyses.append(analyse_task(recipe, task_entry, task, doc))
        state["wall_time"]["evaluation"] += time.monotonic() - started
        started = None
    finally:
        if started is not None:  # interrupted: keep the time spent for the report of the finished run
            phase = "evaluation" if "analyses" in locals() else "training"
            state["wall_time"][phase] += time.monotonic() - started
        atomic_write_json(state_path, state)
    summary = {
        "experiment": recipe.name,
        "version": RECIPE_VERSION,
        "code_version": code_version(),
        "command": command,
        "wall_time": {**state["wall_time"], "total": sum(state["wall_time"].values())},
        "runs": done,
        "tasks": analyses,
    }
    write_artefacts(recipe, out, summary)
    atomic_write_json(out / "summary.json", summary)
    if recipe.wandb:
        log_to_wandb(recipe, out, summary)
    log(f"report: {out / 'report.md'}, page: {out / 'report.html'}")
    return summary


def evaluate(recipe: Recipe, task_entry: TaskEntry, out: Path, progress: Progress | None = None) -> tuple[Task, dict[str, Any]]:
    """Run (or resume) the sweep of one task; ``(task, results document)``."""
    curves, _ = plan_task_curves(recipe, out)
    task = create_task_from_options(task_entry.task, dict(task_entry.options))
    path = out / "results" / f"{task_entry.label}.json"
    try:
        results = sweep.evaluate(
            task,
            curves,
            path,
            task_entry.dataset,
            dict(task_entry.dataset_options),
            chunk_size=recipe.chunk_size,
            workers=recipe.workers,
            progress=progress,
            keep_crops=KEEP_CROPS,
        )
    except OutputExistsError as exc:  # the sweep's own advice (--force) is not an option of this command
        reason = str(exc).split(";")[0]
        raise OutputExistsError(f"{reason}; delete it to judge task {task_entry.label} again (the trained runs are kept)") from None
    return task, results.doc


def rewrite_report(recipe: Recipe, out: str | os.PathLike, *, log: Log = print, command: str | None = None) -> dict[str, Any]:
    """Analyse ``out``'s recorded results again and rewrite its figures, tables, ``summary.json`` and ``report.md``.

    Nothing is trained or judged, and nothing is logged to W&B; the runs' records, wall time,
    command and code version of the experiment come from the folder's ``summary.json`` (so a
    folder without its ``runs/``, such as ``docs/experiments/offline_small``, will do), and
    ``command`` with this code's version is recorded as the rewrite's. ``recipe`` must be the
    recipe the folder was run with (its ``recipe.yaml``). Returns the new summary.
    """
    out = Path(out)
    ran, previous = out / "recipe.yaml", out / "summary.json"
    if not ran.is_file() or not previous.is_file():
        raise ConfigError(f"{out} holds no finished experiment (recipe.yaml and summary.json); run it without --report-only first")
    if recipe_data(load_recipe(ran)) != recipe_data(recipe):
        raise ConfigError(f"the recipe differs from {ran}, which the results were made with; pass --config {ran}")
    old = json.loads(previous.read_text())
    analyses = []
    for task_entry in recipe.tasks:
        path = out / "results" / f"{task_entry.label}.json"
        if not path.is_file():
            raise ConfigError(f"{path} is missing; run without --report-only to judge task {task_entry.label}")
        doc = read_document(path)  # any version of the results format
        log(f"analysing {task_entry.label} ({task_entry.task})")
        task = task_class(task_entry.task)  # its summaries, not its judgements: no model is built
        analyses.append(analyse_task(recipe, task_entry, task, doc))
    summary = {
        **{key: old[key] for key in ("experiment", "version", "code_version", "command", "wall_time", "runs")},
        "report_rewritten": {"command": command, "code_version": code_version()},
        "tasks": analyses,
    }
    write_artefacts(recipe, out, summary)
    atomic_write_json(out / "summary.json", summary)
    log(f"report: {out / 'report.md'}, page: {out / 'report.html'}")
    return summary


__all__ = ["run_experiment", "evaluate", "rewrite_report"]
