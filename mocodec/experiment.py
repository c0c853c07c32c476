"""``mocodec experiment``: compare distortion terms by rate–task curves, from one recipe.

A **recipe** (YAML, :class:`Recipe`) lists codecs × distortion terms × λ values × seeds,
the training settings every run shares, the tasks that judge the decoded images and the
classic baselines drawn beside. :func:`run_experiment` then

1. **trains** every (codec, term, λ, seed) run with ``mocodec train``'s own LightningCLI
   (:func:`mocodec.training.run_cli`), all for the same number of steps (runs are compared
   at equal steps, not equal wall time), after the bases of codecs with ``pretrain``
   (:class:`PretrainEntry`: one per seed, every compared run of that codec and seed starts
   from it), ``--jobs`` of them at a time (:func:`train_runs`). Each run's exact training config is written to
   ``runs/<run>/train.yaml``; a finished run (``done.json`` with the same config digest)
   is reused, an interrupted one resumes from its ``last.ckpt``. Terms are balanced with
   :class:`~mocodec.losses.RateDistortionLoss`'s mechanism (``balance_warmup``: after the
   warm-up each term is rescaled to the reference term's running mean, so a weight states
   the term's share at the working point, not at initialisation); the trainer logs each
   term's share of the loss (``train/share_*``) and the report quotes them;
2. **evaluates** every task with the ``eval-task`` sweep (:mod:`mocodec.evaluation.sweep`):
   one curve per (term, seed) whose points are the λ checkpoints, plus the baselines;
   per-image records, resumable point by point;
3. **analyses** (:mod:`mocodec.evaluation.aggregate`): curves averaged over seeds, with
   bootstrap intervals over images *and* seeds, and BD-rate / BD-metric of every curve
   against the anchor term (the MSE-trained curve) with the same intervals;
4. **reports**: a figure per task, the BD tables (Markdown and CSV), ``summary.json`` and
   ``report.md`` linking them; the report says plainly when an interval holds zero.

Every training run logs to W&B (offline unless ``WANDB_MODE`` says otherwise) in a group
named after the experiment; an ``evaluation`` run in the same group carries the figures
and tables.

Results folder::

    OUT/recipe.yaml                    the recipe as run
    OUT/runs/<run>/train.yaml          the run's LightningCLI config
    OUT/runs/<run>/checkpoints/last.ckpt, csv/, wandb/, done.json
    OUT/results/<task>.json            eval-task results (per-image records)
    OUT/figures/<task>.png             rate–task figure
    OUT/tables/bd_<task>.md, .csv      BD table against the anchor
    OUT/summary.json                   curves with intervals, BD rows, runs, wall time
    OUT/report.md
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import difflib
import hashlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from mocodec.errors import ConfigError, MocodecError

Log = Callable[[str], None]
RECIPE_VERSION = 1


# --------------------------------------------------------------------------- recipe


@dataclass(frozen=True)
class PretrainEntry:
    """The starting point every run of a codec is fine-tuned from, trained by the recipe itself.

    Once per seed, the codec is trained for ``steps`` on ``distortions`` at ``lmbda``; every
    compared run of that codec and seed then starts from this checkpoint (fresh optimisers)
    and trains ``steps`` of its own. It is the offline stand-in for ``init_weights:
    pretrained`` (published MSE weights): short compared runs start from a working codec
    instead of from noise, and every term gets the same start and the same steps.
    """

    steps: int
    lmbda: float
    distortions: dict[str, Any] = field(default_factory=lambda: {"mse": 1.0})


@dataclass(frozen=True)
class CodecEntry:
    """A codec architecture every term is trained on (``codec`` is a registry name)."""

    label: str
    codec: str
    quality: int = 3
    kwargs: dict[str, Any] = field(default_factory=dict)
    init_weights: str | None = None  # start every run from these weights (a file, or ``pretrained``)
    pretrain: PretrainEntry | None = None  # fine-tune every run from a base trained by the recipe (after init_weights)


@dataclass(frozen=True)
class TermEntry:
    """A distortion term set: ``RateDistortionLoss``'s ``distortions`` at each λ.

    ``balance_warmup``: steps before the terms are balanced (null: not balanced; a single
    term needs none). The first listed distortion is the reference of balancing.
    """

    label: str
    distortions: dict[str, Any]
    lmbdas: tuple[float, ...]
    balance_warmup: int | None = None


@dataclass(frozen=True)
class TaskEntry:
    """A task judging the decoded images: a registry task with its options and dataset.

    ``metrics``: the rate-dependent metrics to analyse; the first is the primary measure.
    """

    label: str
    task: str
    metrics: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """An experiment (see the module docstring); :func:`load_recipe` reads it from YAML.

    Args:
        name: the experiment's name (W&B group, default output folder ``experiments/<name>``).
        codecs / terms / tasks: named entries (:class:`CodecEntry`, :class:`TermEntry`, :class:`TaskEntry`).
        anchor: the term every curve is compared against (BD tables).
        seeds: training seeds; each (codec, term, λ) is trained once per seed.
        steps: training steps of every run (equal steps).
        checkpoints: validations (each writing ``last.ckpt``) per run: where an interrupted run resumes.
        training: the LightningCLI config shared by every run (``mocodec train``'s schema:
            ``trainer``, ``model``, ``data``); the recipe fills in codec, λ, terms, seed and steps.
        baselines: classic codec name -> qualities, drawn beside (and BD-compared).
        bootstrap: resamples of the intervals; interval: their coverage.
        chunk_size: images per chunk of the sweep.
        wandb: log to W&B (offline unless ``WANDB_MODE`` says otherwise).
    """

    name: str
    codecs: tuple[CodecEntry, ...]
    terms: tuple[TermEntry, ...]
    tasks: tuple[TaskEntry, ...]
    anchor: str
    seeds: tuple[int, ...]
    steps: int
    description: str = ""
    checkpoints: int = 4
    training: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, tuple[int, ...]] = field(default_factory=dict)
    bootstrap: int = 1000
    interval: float = 0.95
    chunk_size: int = 16
    wandb: bool = True

    def runs(self) -> list["Run"]:
        """The compared runs: every (codec, term, λ, seed)."""
        return [Run(c, t, lmbda, seed) for c in self.codecs for t in self.terms for lmbda in t.lmbdas for seed in self.seeds]

    def pretraining_runs(self) -> list["Run"]:
        """The bases the compared runs start from: one per (codec with ``pretrain``, seed)."""
        return [Run.pretraining_of(c, seed) for c in self.codecs if c.pretrain is not None for seed in self.seeds]

    def method(self, codec: CodecEntry, term: TermEntry) -> str:
        """The name of a (codec, term) curve: the term alone when there is one codec."""
        return term.label if len(self.codecs) == 1 else f"{codec.label}/{term.label}"


def _check_keys(data: Any, cls: type, where: str, name_field: str | None = None) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {type(data).__name__}")
    known = [f.name for f in dataclasses.fields(cls) if f.name != name_field]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
            raise ConfigError(f"unknown key '{key}' in {where}; {hint}")
    required = [f.name for f in dataclasses.fields(cls) if f.name != name_field
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"{where} lacks the key '{missing[0]}'")
    return dict(data)


def _named(data: Any, cls: type, where: str) -> tuple[Any, ...]:
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"'{where}' must map names to entries, e.g. {where}: {{mse: {{...}}}}")
    return tuple(cls(label=str(label), **_check_keys(entry, cls, f"{where}.{label}", "label")) for label, entry in data.items())


def _number_list(value: Any, where: str, kind: type = float) -> tuple:
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise ConfigError(f"{where} must be a list of numbers, got {value!r}")
    if kind is int and any(v != int(v) for v in values):
        raise ConfigError(f"{where} must be whole numbers, got {value!r}")
    return tuple(kind(v) for v in values)


def parse_recipe(data: Any, where: str = "the recipe") -> Recipe:
    """A :class:`Recipe` from plain data; unknown or missing keys and bad values are one-line errors."""
    from mocodec.codecs import CODECS
    from mocodec.evaluation.sweep import check_options
    from mocodec.losses import DISTORTIONS
    from mocodec.tasks import TASKS

    raw = _check_keys(data, Recipe, where)
    raw["codecs"] = tuple(dataclasses.replace(c, pretrain=_pretrain(c.pretrain, f"codecs.{c.label}.pretrain"))
                          for c in _named(raw["codecs"], CodecEntry, "codecs"))
    raw["terms"] = tuple(dataclasses.replace(t, lmbdas=_number_list(t.lmbdas, f"terms.{t.label}.lmbdas"))
                         for t in _named(raw["terms"], TermEntry, "terms"))
    raw["tasks"] = tuple(dataclasses.replace(t, metrics=tuple(t.metrics) if isinstance(t.metrics, (list, tuple)) else (t.metrics,))
                         for t in _named(raw["tasks"], TaskEntry, "tasks"))
    raw["seeds"] = _number_list(raw["seeds"], "seeds", int)
    raw["baselines"] = {str(k): _number_list(v, f"baselines.{k}", int) for k, v in (raw.get("baselines") or {}).items()}
    recipe = Recipe(**raw)
    for codec in recipe.codecs:
        CODECS.get(codec.codec)  # unknown names list the known ones
    sets = [(f"terms.{t.label}", t.distortions) for t in recipe.terms]
    sets += [(f"codecs.{c.label}.pretrain", c.pretrain.distortions) for c in recipe.codecs if c.pretrain is not None]
    for where, distortions in sets:
        if not isinstance(distortions, Mapping) or not distortions:
            raise ConfigError(f"{where}.distortions must map distortion names to weights, e.g. {{mse: 1.0}}")
        for name in distortions:
            DISTORTIONS.get(name)
    for task in recipe.tasks:
        check_options(TASKS.get(task.task), dict(task.options), f"tasks.{task.label}: task {task.task}")
    for codec in recipe.baselines:
        CODECS.get(codec)
    if recipe.anchor not in [t.label for t in recipe.terms]:
        raise ConfigError(f"anchor '{recipe.anchor}' is not a term; the terms are: {', '.join(t.label for t in recipe.terms)}")
    if recipe.steps < 1 or not 1 <= recipe.checkpoints <= recipe.steps:
        raise ConfigError(f"steps must be >= 1 and checkpoints between 1 and steps, got steps={recipe.steps}, checkpoints={recipe.checkpoints}")
    for where, steps in [("steps", recipe.steps)] + [(f"codecs.{c.label}.pretrain.steps", c.pretrain.steps)
                                                     for c in recipe.codecs if c.pretrain is not None]:
        if steps < recipe.checkpoints or steps % recipe.checkpoints:
            raise ConfigError(f"{where} ({steps}) must be a multiple of checkpoints ({recipe.checkpoints}), "
                              "so the last checkpoint is the last step")
    if not recipe.seeds or len(set(recipe.seeds)) != len(recipe.seeds):
        raise ConfigError(f"seeds must be distinct and at least one, got {list(recipe.seeds)}")
    if not isinstance(recipe.training, Mapping):
        raise ConfigError("training must be a mapping with mocodec train's sections (trainer, model, data)")
    fixed = {"seed_everything", "ckpt_path"} & set(recipe.training)
    fixed |= {f"model.{k}" for k in _RUN_MODEL_KEYS if k in recipe.training.get("model", {})}
    if fixed:
        raise ConfigError(f"training sets {sorted(fixed)[0]}, which the recipe decides per run; set it through codecs, terms or seeds")
    if not 0 < recipe.interval < 1 or recipe.bootstrap < 1:
        raise ConfigError(f"interval must be in (0, 1) and bootstrap >= 1, got {recipe.interval} and {recipe.bootstrap}")
    return recipe


def _pretrain(data: Any, where: str) -> PretrainEntry | None:
    if data is None:
        return None
    entry = PretrainEntry(**_check_keys(data, PretrainEntry, where))
    (steps,), (lmbda,) = _number_list(entry.steps, f"{where}.steps", int), _number_list(entry.lmbda, f"{where}.lmbda")
    if steps < 1 or lmbda <= 0:
        raise ConfigError(f"{where} needs steps >= 1 and lmbda > 0, got steps={entry.steps}, lmbda={entry.lmbda}")
    return dataclasses.replace(entry, steps=steps, lmbda=lmbda)


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and validate a recipe YAML file."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"recipe {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"recipe {path} is not readable YAML ({type(exc).__name__}); check the file") from None
    try:
        return parse_recipe(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------- runs

_RUN_MODEL_KEYS = ("codec", "quality", "codec_kwargs", "init_weights", "lmbda", "distortions", "balance_warmup")


PRETRAIN = "pretrain"  # the term label of a codec's pretraining runs


@dataclass(frozen=True)
class Run:
    """One training run: a codec trained on one term at one λ from one seed.

    ``pretraining``: this is the codec's base for ``seed`` (:class:`PretrainEntry`), not a compared run.
    """

    codec: CodecEntry
    term: TermEntry
    lmbda: float
    seed: int
    pretraining: bool = False

    @classmethod
    def pretraining_of(cls, codec: CodecEntry, seed: int) -> "Run":
        base = codec.pretrain
        return cls(codec, TermEntry(PRETRAIN, base.distortions, (base.lmbda,)), base.lmbda, seed, pretraining=True)

    @property
    def name(self) -> str:
        if self.pretraining:
            return f"{self.codec.label}_{PRETRAIN}_seed{self.seed}"
        return f"{self.codec.label}_{self.term.label}_lambda{self.lmbda:g}_seed{self.seed}"

    @property
    def point(self) -> str:
        """The run's rate point within its curve."""
        return f"lambda={self.lmbda:g}"

    @property
    def base(self) -> "Run | None":
        """The pretraining run this run starts from; None: it starts from the codec's ``init_weights``."""
        if self.pretraining or self.codec.pretrain is None:
            return None
        return Run.pretraining_of(self.codec, self.seed)

    def steps(self, recipe: Recipe) -> int:
        return self.codec.pretrain.steps if self.pretraining else recipe.steps

    def config(self, recipe: Recipe, out: Path) -> dict[str, Any]:
        """The LightningCLI config of this run: the recipe's shared ``training`` plus this run's choices."""
        steps = self.steps(recipe)
        config = copy.deepcopy(dict(recipe.training))
        trainer = config.setdefault("trainer", {})
        trainer.update({
            "default_root_dir": str(out / "runs" / self.name),
            "max_steps": steps,
            "max_epochs": -1,
            # Validate (and write last.ckpt) every steps / checkpoints global steps, across epochs.
            "val_check_interval": steps // recipe.checkpoints,
            "check_val_every_n_epoch": None,
        })
        base = self.base
        config.setdefault("model", {}).update({
            "codec": self.codec.codec, "quality": self.codec.quality, "codec_kwargs": dict(self.codec.kwargs),
            "init_weights": str(checkpoint_of(out / "runs" / base.name)) if base else self.codec.init_weights,
            "lmbda": self.lmbda, "distortions": copy.deepcopy(self.term.distortions), "balance_warmup": self.term.balance_warmup,
        })
        config["seed_everything"] = self.seed
        return config

    def digest(self, recipe: Recipe, out: Path) -> str:
        """A short digest of the run's config: what it trains and from what, not where the results folder lies."""
        config = self.config(recipe, out)
        config["trainer"].pop("default_root_dir")
        if self.base is not None:  # the base by name and configuration: retraining it otherwise invalidates this run
            config["model"]["init_weights"] = f"{self.base.name}@{self.base.digest(recipe, out)}"
        return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_of(run_dir: Path) -> Path:
    from mocodec.training import checkpoint_dir

    return checkpoint_dir(run_dir) / "last.ckpt"


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block (how W&B runs learn their group)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wandb_environment(recipe: Recipe) -> dict[str, str]:
    return {"WANDB_RUN_GROUP": recipe.name, "WANDB_JOB_TYPE": "train"} if recipe.wandb else {"WANDB_MODE": "disabled"}


def train_run(run: Run, recipe: Recipe, out: Path, log: Log = print) -> dict[str, Any]:
    """Train ``run`` (or resume it, or reuse it when finished); its ``done.json`` record."""
    import yaml

    from mocodec.files import atomic_write_json, atomic_write_text
    from mocodec.training import run_cli
    from mocodec.weights import load_checkpoint

    run_dir = out / "runs" / run.name
    config, config_digest = run.config(recipe, out), run.digest(recipe, out)
    done_path = run_dir / "done.json"
    if done_path.is_file():
        done = json.loads(done_path.read_text())
        if done.get("config_digest") != config_digest:
            raise ConfigError(f"run {run.name} in {out} was trained with another configuration; "
                              f"delete {run_dir} to retrain it, or choose another --out")
        return done
    config_path = run_dir / "train.yaml"
    atomic_write_text(config_path, yaml.safe_dump(config, sort_keys=False))
    resuming = checkpoint_of(run_dir).is_file()
    log(f"{'resuming' if resuming else 'training'} {run.name} ({run.steps(recipe)} steps)")
    start = time.monotonic()
    with _environment(**_wandb_environment(recipe)):
        run_cli(["fit", "--config", str(config_path), "--ckpt_path", "last"])
    steps = int(load_checkpoint(checkpoint_of(run_dir)).get("global_step", -1))
    if steps != run.steps(recipe):
        raise ConfigError(f"run {run.name} ended at step {steps}, not {run.steps(recipe)}; check the training section of the recipe "
                          "(max_steps and val_check_interval are set by the recipe)")
    done = {"run": run.name, "steps": steps, "config_digest": config_digest, "wall_time": time.monotonic() - start,
            "checkpoint": str(checkpoint_of(run_dir).relative_to(out)), "shares": term_shares(run_dir)}
    atomic_write_json(done_path, done)
    return done


def term_shares(run_dir: Path, tail: float = 0.2) -> dict[str, float]:
    """Each loss part's mean share (``train/share_*``) over the last ``tail`` of the logged steps (CSV logs)."""
    rows: dict[int, dict[str, float]] = {}
    for path in sorted((run_dir / "csv").glob("version_*/metrics.csv")):  # one version per (resumed) invocation
        for row in csv.DictReader(io.StringIO(path.read_text())):
            shares = {k.removeprefix("train/share_"): float(v) for k, v in row.items() if k.startswith("train/share_") and v}
            if shares and row.get("step"):
                rows[int(row["step"])] = shares
    if not rows:
        return {}
    steps = sorted(rows)
    last = steps[-max(1, math.ceil(len(steps) * tail)):]
    keys = rows[last[-1]].keys()
    return {k: sum(rows[s].get(k, 0.0) for s in last) / len(last) for k in keys}


def train_runs(runs: Sequence[Run], recipe: Recipe, out: Path, log: Log = print, jobs: int = 1) -> dict[str, dict[str, Any]]:
    """:func:`train_run` for every run, ``jobs`` at a time; run name -> ``done.json`` record, in ``runs``' order.

    With ``jobs`` > 1 each run trains in a worker process with ``1/jobs`` of this process's
    threads, its output going to ``runs/<run>/train.log``: small codecs use threads poorly,
    so on 2 cores two one-thread runs at once finish ~1.5x sooner than one after the
    other with two threads each (``benchmarks/bench_experiment_jobs.py``). Results match a
    one-job run up to float rounding (thread counts change the order of sums); finished runs
    are reused either way. Progress lines count against all of ``runs``, finished ones included.
    """
    _check_jobs(jobs)
    pending = [r for r in runs if not (out / "runs" / r.name / "done.json").is_file()]
    done = {r.name: train_run(r, recipe, out, log) for r in runs if r not in pending}  # checks their digests
    if jobs == 1 or len(pending) < 2:
        for run in pending:
            log(f"[{len(done) + 1}/{len(runs)}] {run.name}")
            done[run.name] = train_run(run, recipe, out, log)
        return {r.name: done[r.name] for r in runs}
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    import torch

    threads = max(1, torch.get_num_threads() // jobs)
    log(f"training {len(pending)} runs, {min(jobs, len(pending))} at a time with {threads} thread(s) each; "
        f"each run's output: {out / 'runs' / '<run>' / 'train.log'}")
    # spawn, not fork: a forked copy of a process that already ran torch threads can deadlock.
    with ProcessPoolExecutor(min(jobs, len(pending)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_in_worker, run, recipe, out, threads): run for run in pending}
        try:
            remaining = set(futures)
            while remaining:
                finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for future in finished:
                    run = futures[future]
                    try:
                        done[run.name] = future.result()  # a run's error: the pool stops (below), then it is raised
                    except BrokenProcessPool:
                        raise MocodecError("a training worker stopped abruptly (killed, or out of memory?); the unfinished runs' "
                                           f"output is in {out / 'runs' / '<run>' / 'train.log'}; rerun the same command to resume") from None
                    log(f"[{len(done)}/{len(runs)}] {run.name} done ({done[run.name]['wall_time']:.0f} s)")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # runs already training finish and stay reusable
            raise
    return {r.name: done[r.name] for r in runs}


def _check_jobs(jobs: int) -> None:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be a whole number >= 1, got {jobs!r}")


def _train_in_worker(run: Run, recipe: Recipe, out: Path, threads: int) -> dict[str, Any]:
    """:func:`train_run` in a worker process, with ``threads`` threads and its output in the run's ``train.log``."""
    import sys

    import torch

    torch.set_num_threads(threads)
    log_path = out / "runs" / run.name / "train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:  # the descriptors themselves, so Lightning's and torch's own writers land there too
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    return train_run(run, recipe, out, log=print)


# --------------------------------------------------------------------------- evaluation


def plan_task_curves(recipe: Recipe, out: Path):
    """The sweep's curves: one per (codec, term, seed) with its λ checkpoints as points, then the baselines.

    Returns ``(curves, groups)`` where ``groups`` maps each trained curve's label to its method name.
    """
    from mocodec.evaluation.coding import CodecSpec
    from mocodec.evaluation.sweep import Curve, RatePoint, plan_curves

    curves, groups = [], {}
    for codec in recipe.codecs:
        for term in recipe.terms:
            method = recipe.method(codec, term)
            for seed in recipe.seeds:
                label = f"{method} seed{seed}"
                runs = [Run(codec, term, lmbda, seed) for lmbda in term.lmbdas]
                points = tuple(RatePoint(label, r.point, CodecSpec.parse(f"ckpt:{checkpoint_of(out / 'runs' / r.name)}"), None) for r in runs)
                curves.append(Curve(label, f"{codec.codec} trained on {term.label}", points))
                groups[label] = method
    if recipe.baselines:
        curves += plan_curves(list(recipe.baselines), [f"{name}={','.join(map(str, q))}" for name, q in recipe.baselines.items()])
    return curves, groups


def evaluate(recipe: Recipe, task_entry: TaskEntry, out: Path, progress=None):
    """Run (or resume) the sweep of one task; ``(task, results document)``."""
    from mocodec.evaluation.sweep import create_task_from_options, evaluate_task

    from mocodec.errors import OutputExistsError

    curves, _ = plan_task_curves(recipe, out)
    task = create_task_from_options(task_entry.task, dict(task_entry.options))
    path = out / "results" / f"{task_entry.label}.json"
    try:
        results = evaluate_task(task, curves, path, task_entry.dataset, dict(task_entry.dataset_options),
                                chunk_size=recipe.chunk_size, progress=progress)
    except OutputExistsError as exc:  # the sweep's own advice (--force) is not an option of this command
        reason = str(exc).split(";")[0]
        raise OutputExistsError(f"{reason}; delete it to judge task {task_entry.label} again (the trained runs are kept)") from None
    return task, results.doc


def analyse_task(recipe: Recipe, task_entry: TaskEntry, task, doc: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Curves with intervals and BD rows of one task (:mod:`mocodec.evaluation.aggregate`), with the judge's facts."""
    from mocodec.evaluation.aggregate import analyse, method_data

    unknown = [m for m in task_entry.metrics if m not in doc["metrics"] or doc["metrics"][m]["reference"]]
    if unknown:
        rate_metrics = [m for m, meta in doc["metrics"].items() if not meta["reference"]]
        raise ConfigError(f"tasks.{task_entry.label}.metrics: '{unknown[0]}' is not a rate-dependent metric of "
                          f"{task_entry.task}; use some of {', '.join(rate_metrics)}")
    _, groups = plan_task_curves(recipe, out)
    methods, ids = method_data(doc, task, groups, task_entry.metrics)
    directions = {m: doc["metrics"][m]["higher_is_better"] for m in task_entry.metrics}
    anchor = recipe.method(recipe.codecs[0], next(t for t in recipe.terms if t.label == recipe.anchor))
    analysis = analyse(methods, directions, anchor, recipe.bootstrap, recipe.interval)
    # Measured on the originals: the same at every point, so any point's records give them.
    first = doc["entries"][0]
    originals = [r for r in first["per_image"] if r["point"] == next(iter(first["points"])) and r["id"] in set(ids)]
    reference = {m: v for m, v in task.summarize(originals).items() if doc["metrics"].get(m, {}).get("reference") and v is not None}
    return {
        "task": task_entry.label, "identity": doc["task"], "dataset": doc["dataset"], "num_images": len(ids),
        "anchor": anchor, "reference": reference,
        "metrics": {m: {"label": doc["metrics"][m]["label"], "higher_is_better": directions[m]} for m in task_entry.metrics},
        "results": f"results/{task_entry.label}.json", **analysis,
    }


# --------------------------------------------------------------------------- the whole experiment


def run_experiment(recipe: Recipe, out: str | os.PathLike, *, log: Log = print, progress=None, command: str | None = None,
                   jobs: int = 1) -> dict[str, Any]:
    """Train, evaluate, analyse and report (module docstring); returns ``summary.json``'s content.

    ``command``: the command line that ran it, quoted in the report. ``jobs``: training runs
    at once (:func:`train_runs`).
    """
    import yaml

    from mocodec.files import atomic_write_json, atomic_write_text

    _check_jobs(jobs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "recipe.yaml", yaml.safe_dump(recipe_data(recipe), sort_keys=False))
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"wall_time": {"training": 0.0, "evaluation": 0.0}}
    started = time.monotonic()
    try:
        done = {}
        for phase in (recipe.pretraining_runs(), recipe.runs()):  # the bases first: the compared runs start from them
            done |= train_runs(phase, recipe, out, log, jobs)
        state["wall_time"]["training"] += time.monotonic() - started
        started = time.monotonic()
        analyses = []
        for task_entry in recipe.tasks:
            log(f"evaluating {task_entry.label} ({task_entry.task})")
            task, doc = evaluate(recipe, task_entry, out, progress)
            analyses.append(analyse_task(recipe, task_entry, task, doc, out))
        state["wall_time"]["evaluation"] += time.monotonic() - started
        started = None
    finally:
        if started is not None:  # interrupted: keep the time spent for the report of the finished run
            phase = "evaluation" if "analyses" in locals() else "training"
            state["wall_time"][phase] += time.monotonic() - started
        atomic_write_json(state_path, state)
    summary = {"experiment": recipe.name, "version": RECIPE_VERSION, "code_version": _code_version(), "command": command,
               "wall_time": {**state["wall_time"], "total": sum(state["wall_time"].values())},
               "runs": done, "tasks": analyses}
    write_artefacts(recipe, out, summary)
    atomic_write_json(out / "summary.json", summary)
    if recipe.wandb:
        log_to_wandb(recipe, out, summary)
    log(f"report: {out / 'report.md'}")
    return summary


def _code_version() -> str:
    from mocodec.utils.provenance import code_version

    return code_version()


# --------------------------------------------------------------------------- artefacts

BD_COLUMNS = ("task", "curve", "metric", "points", "bd_rate", "bd_rate_low", "bd_rate_high",
              "bd_metric", "bd_metric_low", "bd_metric_high", "verdict", "note")


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}f}" if math.isfinite(value) else "n/a"


def _with_interval(values: Sequence[float], digits: int = 2) -> str:
    est, low, high = values
    return f"{_fmt(est, digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


def bd_rows(analysis: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The BD table of one task as flat rows (:data:`BD_COLUMNS`), the CSV's content."""
    return [{"task": analysis["task"], "curve": r["curve"], "metric": r["metric"], "points": r["points"],
             "bd_rate": r["bd_rate"][0], "bd_rate_low": r["bd_rate"][1], "bd_rate_high": r["bd_rate"][2],
             "bd_metric": r["bd_metric"][0], "bd_metric_low": r["bd_metric"][1], "bd_metric_high": r["bd_metric"][2],
             "verdict": r["verdict"], "note": r["note"]} for r in analysis["bd"]]


def bd_markdown(analysis: Mapping[str, Any], coverage: float) -> str:
    lines = [f"| curve | metric | points | BD-rate [%] ({coverage:.0%} interval) | BD-metric ({coverage:.0%} interval) | verdict | note |",
             "|---|---|---|---|---|---|---|"]
    for r in analysis["bd"]:
        lines.append(f"| {r['curve']} | {r['metric']} | {r['points']} | {_with_interval(r['bd_rate'])} | "
                     f"{_with_interval(r['bd_metric'], 4)} | {r['verdict']} | {r['note']} |")
    return "\n".join(lines) + "\n"


def write_artefacts(recipe: Recipe, out: Path, summary: dict[str, Any]) -> None:
    """The figure and BD tables of every task, and ``report.md``; their paths go into ``summary["files"]``."""
    from mocodec.evaluation.plots import plot_intervals
    from mocodec.files import atomic_write_text

    files: dict[str, dict[str, str]] = {}
    for analysis in summary["tasks"]:
        label = analysis["task"]
        figure = Path("figures") / f"{label}.png"
        labels = {m: f"{meta['label']} {'↑' if meta['higher_is_better'] else '↓'}" for m, meta in analysis["metrics"].items()}
        title = f"{recipe.name}: {analysis['identity'].get('model', analysis['identity']['name'])} on {analysis['num_images']} images"
        plot_intervals(analysis["curves"], out / figure, labels, title)
        table_md, table_csv = Path("tables") / f"bd_{label}.md", Path("tables") / f"bd_{label}.csv"
        atomic_write_text(out / table_md, bd_markdown(analysis, recipe.interval))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=BD_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(bd_rows(analysis))
        atomic_write_text(out / table_csv, buffer.getvalue())
        files[label] = {"figure": str(figure), "bd_markdown": str(table_md), "bd_csv": str(table_csv), "results": analysis["results"]}
    summary["files"] = files
    atomic_write_text(out / "report.md", report_markdown(recipe, summary))


def _mean_shares(recipe: Recipe, term: TermEntry, runs: Mapping[str, Any]) -> str:
    shares = [runs[r.name]["shares"] for r in recipe.runs() if r.term == term and runs.get(r.name, {}).get("shares")]
    if not shares:
        return "not logged"
    keys = shares[0].keys()
    return ", ".join(f"{k} {sum(s.get(k, 0.0) for s in shares) / len(shares):.0%}" for k in keys)


def report_markdown(recipe: Recipe, summary: Mapping[str, Any]) -> str:
    """The experiment's report: setup, judge, figure, BD tables and plain conclusions."""
    wall = summary["wall_time"]
    data = recipe.training.get("data", {})
    lines = [
        f"# Experiment `{recipe.name}`", "", recipe.description.strip(), "",
        *([f"- Command: `{summary['command']}`"] if summary.get("command") else []),
        f"- Code version: `{summary['code_version']}`; wall time {wall['total'] / 60:.1f} min "
        f"(training {wall['training'] / 60:.1f} min, evaluation {wall['evaluation'] / 60:.1f} min; summed over invocations).",
        f"- Every run: {recipe.steps} steps (compared at equal steps), seeds {', '.join(map(str, recipe.seeds))}, "
        f"batch {data.get('batch_size', 'default')}, crops {data.get('crop_size', 'default')} px, "
        f"training images: {data.get('train') or 'the embedded training photographs'}.",
        *[f"- Every run of `{c.label}` is fine-tuned from a base trained by the recipe for {c.pretrain.steps} steps on "
          f"`{json.dumps(c.pretrain.distortions)}` at λ {c.pretrain.lmbda:g}, one base per seed "
          f"(`runs/{Run.pretraining_of(c, recipe.seeds[0]).name}`, ...), with fresh optimisers."
          for c in recipe.codecs if c.pretrain is not None],
        f"- Intervals: {recipe.interval:.0%} percentile bootstrap ({recipe.bootstrap} resamples) over images and seeds; "
        "a difference whose BD-rate interval holds 0 is **inside the noise**.",
        "", "## Codecs and distortion terms", "",
        "| term | codec | distortions | λ | balancing | share of the loss at the end of training (mean over runs) |",
        "|---|---|---|---|---|---|",
    ]
    for codec in recipe.codecs:
        for term in recipe.terms:
            arch = f"{codec.codec} q{codec.quality} {json.dumps(codec.kwargs) if codec.kwargs else ''}".strip()
            balance = f"after {term.balance_warmup} steps" if term.balance_warmup is not None else "off"
            lines.append(f"| {recipe.method(codec, term)} | {arch} | `{json.dumps(term.distortions)}` | "
                         f"{', '.join(f'{v:g}' for v in term.lmbdas)} | {balance} | {_mean_shares(recipe, term, summary['runs'])} |")
    lines += ["", "Balancing (`balance_warmup`): after the warm-up every term is rescaled to the running mean of the first "
              "(reference) term, so a weight states the term's share of the distortion at the working point reached in training, "
              "not at initialisation. Shares come from the runs' `train/share_*` logs (last 20 % of the logged steps)."]
    for analysis in summary["tasks"]:
        files = summary["files"][analysis["task"]]
        primary = next(iter(analysis["metrics"]))
        ident = analysis["identity"]
        lines += ["", f"## Task `{analysis['task']}`: {ident['name']} judged by {ident.get('model', '?')} "
                      f"(weights: {ident.get('weights', '?')})", ""]
        facts = [f"{analysis['num_images']} images ({analysis['dataset'].get('root') or 'tiles of the held-out embedded photographs'})"]
        facts += [f"{m} on the originals {v:.3f}" for m, v in analysis["reference"].items()]
        lines += ["- " + "; ".join(facts) + ".",
                  f"- Primary measure: **{analysis['metrics'][primary]['label']}**; "
                  f"also {', '.join(meta['label'] for m, meta in analysis['metrics'].items() if m != primary) or 'nothing else'}.",
                  f"- Files: [figure]({files['figure']}), [BD table]({files['bd_markdown']}) ([CSV]({files['bd_csv']})), "
                  f"[per-image results]({files['results']}).", "",
                  f"![{analysis['task']}]({files['figure']})", "",
                  f"BD against `{analysis['anchor']}` (BD-rate < 0: fewer bits at equal metric):", "",
                  bd_markdown(analysis, recipe.interval), "### In plain words", ""]
        for row in analysis["bd"]:
            words = (f"inside the noise: the interval holds 0, so this experiment cannot tell {row['curve']} from {analysis['anchor']}"
                     if row["verdict"] == "inside the noise" else row["verdict"] + (f" ({row['note']})" if row["note"] else ""))
            lines.append(f"- {row['curve']} on {row['metric']}: BD-rate {_with_interval(row['bd_rate'])} %: {words}.")
    return "\n".join(lines) + "\n"


def log_to_wandb(recipe: Recipe, out: Path, summary: Mapping[str, Any]) -> None:
    """An ``evaluation`` run in the experiment's W&B group with the figures, BD tables and wall time."""
    import wandb

    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "mocodec"), group=recipe.name, job_type="evaluation",
                     name=f"{recipe.name}-evaluation", dir=str(out), config=recipe_data(recipe),
                     mode=os.environ.get("WANDB_MODE", "offline"), reinit="finish_previous")
    try:
        for analysis in summary["tasks"]:
            label = analysis["task"]
            rows = bd_rows(analysis)
            run.log({f"{label}/figure": wandb.Image(str(out / summary["files"][label]["figure"])),
                     f"{label}/bd": wandb.Table(columns=list(BD_COLUMNS), data=[[r[c] for c in BD_COLUMNS] for r in rows])})
        run.summary.update({"wall_time_min": summary["wall_time"]["total"] / 60})
    finally:
        run.finish()


def recipe_data(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data, in the YAML layout :func:`parse_recipe` reads."""
    data = dataclasses.asdict(recipe)
    for key in ("codecs", "terms", "tasks"):
        data[key] = {entry.pop("label"): entry for entry in data[key]}
    for term in data["terms"].values():
        term["lmbdas"] = list(term["lmbdas"])
    for task in data["tasks"].values():
        task["metrics"] = list(task["metrics"])
    data["seeds"] = list(data["seeds"])
    data["baselines"] = {k: list(v) for k, v in data["baselines"].items()}
    return data


__all__ = ["PretrainEntry", "CodecEntry", "TermEntry", "TaskEntry", "Recipe", "Run", "load_recipe", "parse_recipe", "run_experiment",
           "train_run", "train_runs",
           "term_shares", "plan_task_curves", "recipe_data"]
