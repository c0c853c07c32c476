"""``mocodec experiment``: compare distortion terms by rate–task curves, from one recipe.

A **recipe** (YAML, :class:`Recipe`, :mod:`.recipe`) lists codecs × distortion terms × λ values × seeds,
the training settings every run shares, the tasks that judge the decoded images and the
classic baselines drawn beside. :func:`run_experiment` then

1. **trains** every (codec, term, λ, seed) run with ``mocodec train``'s own LightningCLI
   (:func:`mocodec.training.run_cli`), all for the same number of steps (runs are compared
   at equal steps, not equal wall time), after the bases of codecs with ``pretrain``
   (:class:`PretrainEntry`: one per seed, every compared run of that codec and seed starts
   from it), ``--jobs`` of them at a time (:mod:`.runs`). Each run's exact training config is written to
   ``runs/<run>/train.yaml``; a finished run (``done.json`` with the same config digest)
   is reused, an interrupted one resumes from its ``last.ckpt``. Terms are balanced with
   :class:`~mocodec.losses.RateDistortionLoss`'s mechanism (``balance_warmup``: after the
   warm-up each term is rescaled to the reference term's running mean, so a weight states
   the term's share at the working point, not at initialisation); the trainer logs each
   term's share of the loss (``train/share_*``) and the report quotes them;
2. **evaluates** every task with the ``eval-task`` sweep (:mod:`mocodec.evaluation.sweep`):
   one curve per (term, seed) whose points are the λ checkpoints, plus the baselines;
   per-image records, resumable point by point;
3. **analyses** (:mod:`.analysis`): curves averaged over seeds, with bootstrap intervals
   over images *and* seeds, and BD-rate / BD-metric of every curve against the anchor term
   (the MSE-trained curve) with the same intervals;
4. **reports** (:mod:`.report`): a figure per task, the BD tables (Markdown and CSV),
   ``summary.json`` and ``report.md`` linking them; the report says plainly when an interval
   holds zero and when curves overlap too little for a BD-rate to compare them.
   :func:`rewrite_report` (``--report-only``) redoes 3 and 4 alone from the recorded results.

Every training run logs to W&B (offline unless ``WANDB_MODE`` says otherwise) in a group
named after the experiment; an ``evaluation`` run in the same group carries the figures
and tables.

Results folder::

    OUT/recipe.yaml                    the recipe as run
    OUT/runs/<run>/train.yaml          the run's LightningCLI config
    OUT/runs/<run>/checkpoints/last.ckpt, csv/, wandb/, done.json, progress.json (wall time over invocations)
    OUT/results/<task>.json            eval-task results (per-image records)
    OUT/figures/<task>.png             rate–task figure
    OUT/tables/bd_<task>.md, .csv      BD table against the anchor
    OUT/summary.json                   curves with intervals, BD rows, runs, wall time
    OUT/report.md
    OUT/state.json                     wall time so far (summed over invocations)

Long recipes train in stretches (``--minutes M``: every run stops at the deadline, resumable,
and nothing is judged until all have finished) with their resumable state kept in a folder
that outlives the machine (``--state DIR``, :mod:`.state`: committed, or carried to a GPU
machine and back); rerunning the same command goes on where the last stretch stopped.

Modules: :mod:`.recipe` (the dataclasses, read with jsonargparse), :mod:`.runs` (training runs,
``--jobs``), :mod:`.analysis` (curves over seeds, intervals, BD rows and verdicts),
:mod:`.report` (figures, tables, ``report.md``, W&B), :mod:`.state` (resumable state that travels),
:mod:`.pipeline` (the whole experiment).
"""

from mocodec.experiment.analysis import MethodData, analyse, analyse_task, comparable, method_data, plan_task_curves, verdict
from mocodec.experiment.pipeline import evaluate, rewrite_report, run_experiment
from mocodec.experiment.recipe import (
    RECIPE_VERSION,
    CodecEntry,
    PretrainEntry,
    Recipe,
    TaskEntry,
    TermEntry,
    load_recipe,
    parse_recipe,
    recipe_data,
)
from mocodec.experiment.report import BD_COLUMNS, bd_markdown, bd_rows, report_markdown
from mocodec.experiment.runs import Run, Stretch, compared_runs, pretraining_runs, term_shares, train_run, train_runs

__all__ = [
    "RECIPE_VERSION",
    "PretrainEntry",
    "CodecEntry",
    "TermEntry",
    "TaskEntry",
    "Recipe",
    "load_recipe",
    "parse_recipe",
    "recipe_data",
    "Run",
    "Stretch",
    "compared_runs",
    "pretraining_runs",
    "train_run",
    "train_runs",
    "term_shares",
    "MethodData",
    "method_data",
    "analyse",
    "verdict",
    "comparable",
    "plan_task_curves",
    "analyse_task",
    "BD_COLUMNS",
    "bd_rows",
    "bd_markdown",
    "report_markdown",
    "run_experiment",
    "evaluate",
    "rewrite_report",
]
