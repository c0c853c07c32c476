"""The training runs of a recipe: one per (codec, term, λ, seed), plus the bases they start from.

Each run trains with ``mocodec train``'s own LightningCLI (:func:`mocodec.training.run_cli`)
from the config :meth:`Run.config` writes to ``runs/<run>/train.yaml``, for the recipe's
number of steps (runs are compared at equal steps, not equal wall time). A finished run
(``done.json`` with the same config digest) is reused, an interrupted one resumes from its
``last.ckpt``, and one trained with another configuration is refused. :func:`train_runs`
trains ``--jobs`` of them at a time in worker processes (:func:`mocodec.utils.workers.run_in_workers`).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import importlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from mocodec.errors import ConfigError
from mocodec.experiment import state as run_state
from mocodec.experiment.recipe import CodecEntry, Recipe, TermEntry
from mocodec.files import atomic_write_json, atomic_write_text
from mocodec.training.layout import checkpoint_dir
from mocodec.utils.workers import check_processes, run_in_workers, threads_per_worker

Log = Callable[[str], None]
PRETRAIN = "pretrain"  # the term label of a codec's pretraining runs


@dataclass(frozen=True)
class Run:
    """One training run: a codec trained on one term at one λ from one seed.

    ``pretraining``: this is the codec's base for ``seed`` (:class:`~mocodec.experiment.recipe.PretrainEntry`), not a compared run.
    """

    codec: CodecEntry
    term: TermEntry
    lmbda: float
    seed: int
    pretraining: bool = False

    @classmethod
    def pretraining_of(cls, codec: CodecEntry, seed: int) -> Run:
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

    def base(self, recipe: Recipe) -> Run | None:
        """The run this run is fine-tuned from: its term's ``start_from`` run at its λ, else its codec's
        pretraining run; None: it starts from the codec's ``init_weights``."""
        if self.pretraining:
            return None
        if self.term.start_from is not None:
            term = next(t for t in recipe.terms if t.label == self.term.start_from)
            return Run(self.codec, term, self.lmbda, self.seed)
        return Run.pretraining_of(self.codec, self.seed) if self.codec.pretrain is not None else None

    def steps(self, recipe: Recipe) -> int:
        if self.pretraining:
            return self.codec.pretrain.steps
        return self.term.steps if self.term.steps is not None else recipe.steps

    @property
    def quality(self) -> int:
        """The codec's quality for this run: its rate point's entry of ``qualities``, else ``quality``."""
        if self.codec.qualities is None or self.pretraining:
            return self.codec.quality
        return self.codec.qualities[self.term.lmbdas.index(self.lmbda)]

    def config(self, recipe: Recipe, out: Path) -> dict[str, Any]:
        """The LightningCLI config of this run: the recipe's shared ``training`` plus this run's choices."""
        steps = self.steps(recipe)
        config = copy.deepcopy(dict(recipe.training))
        trainer = config.setdefault("trainer", {})
        trainer.update(
            {
                "default_root_dir": str(out / "runs" / self.name),
                "max_steps": steps,
                "max_epochs": -1,
                # Validate (and write last.ckpt) every steps / checkpoints global steps, across epochs.
                "val_check_interval": steps // recipe.checkpoints,
                "check_val_every_n_epoch": None,
            }
        )
        base = self.base(recipe)
        config.setdefault("model", {}).update(
            {
                "codec": self.codec.codec,
                "quality": self.quality,
                "codec_kwargs": dict(self.codec.kwargs),
                "init_weights": str(checkpoint_of(out / "runs" / base.name)) if base else self.codec.init_weights,
                "lmbda": self.lmbda,
                "distortions": copy.deepcopy(self.term.distortions),
                "balance_warmup": self.term.balance_warmup,
            }
        )
        config["seed_everything"] = self.seed
        return config

    def digest(self, recipe: Recipe, out: Path) -> str:
        """A short digest of the run's config: what it trains and from what, not where the results folder lies."""
        config = self.config(recipe, out)
        config["trainer"].pop("default_root_dir")
        base = self.base(recipe)
        if base is not None:  # the base by name and configuration: retraining it otherwise invalidates this run
            config["model"]["init_weights"] = f"{base.name}@{base.digest(recipe, out)}"
        return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def training_phases(recipe: Recipe) -> list[list[Run]]:
    """Every run of ``recipe`` in the order they can train: the pretraining runs, then the compared
    runs in waves, each wave's runs starting from runs of the waves before (``start_from``)."""
    phases, placed = [pretraining_runs(recipe)], set()
    waiting = list(recipe.terms)
    while waiting:
        ready = [t for t in waiting if t.start_from is None or t.start_from in placed]
        if not ready:  # validate() refuses such recipes; a hand-made Recipe must not loop here
            raise ConfigError(f"terms {', '.join(t.label for t in waiting)} start from terms that never train")
        phases.append([r for r in compared_runs(recipe) if r.term in ready])
        placed |= {t.label for t in ready}
        waiting = [t for t in waiting if t not in ready]
    return [phase for phase in phases if phase]


def compared_runs(recipe: Recipe) -> list[Run]:
    """The compared runs: every (codec, term, λ, seed)."""
    return [Run(c, t, lmbda, seed) for c in recipe.codecs for t in recipe.terms for lmbda in t.lmbdas for seed in recipe.seeds]


def pretraining_runs(recipe: Recipe) -> list[Run]:
    """The bases the compared runs start from: one per (codec with ``pretrain``, seed)."""
    return [Run.pretraining_of(c, seed) for c in recipe.codecs if c.pretrain is not None for seed in recipe.seeds]


def _training() -> ModuleType:
    """:mod:`mocodec.training` (Lightning, CompressAI: seconds to import), imported when a run trains.

    Reading results and drawing reports need the runs' names and folders only
    (:mod:`mocodec.training.layout`). ``run_cli`` is called through the module: tests count its calls.
    """
    return importlib.import_module("mocodec.training")


def checkpoint_of(run_dir: Path) -> Path:
    """The checkpoint a finished run leaves: its coding-ready ``last.ckpt``."""
    return checkpoint_dir(run_dir) / "last.ckpt"


# --------------------------------------------------------------------------- training


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


@dataclass(frozen=True)
class Stretch:
    """How long this invocation trains, and where the runs' resumable state is kept between invocations.

    ``deadline``: wall-clock time (``time.time()``) at which training stops, every run resumable;
    None: train every run to its end. ``state_dir``: the folder :mod:`mocodec.experiment.state`
    keeps each run's state in (restored before a run trains, saved after); None: the run folders only.
    ``accelerator``: where this stretch trains (Lightning's ``trainer.accelerator``: ``gpu``,
    ``cpu``, ``auto``), instead of the recipe's; None: the recipe's. Where a run trains is not
    what it is: its digest, and so its kept state, stay valid, so a recipe started on a CPU goes on
    on a GPU and back.
    """

    deadline: float | None = None
    state_dir: Path | None = None
    accelerator: str | None = None
    min_seconds: float = 60.0  # a run not started with this much time left waits for the next invocation

    @classmethod
    def of(cls, minutes: float | None = None, state_dir: str | os.PathLike | None = None, accelerator: str | None = None) -> Stretch:
        if minutes is not None and not minutes > 0:
            raise ConfigError(f"--minutes must be a positive number of minutes, not {minutes}")
        deadline = time.time() + 60 * minutes if minutes is not None else None
        return cls(deadline, Path(state_dir) if state_dir is not None else None, accelerator)


WHOLE_RUNS = Stretch()  # every run trained to its end, its state in its run folder only


def train_run(run: Run, recipe: Recipe, out: Path, log: Log = print, stretch: Stretch = WHOLE_RUNS) -> dict[str, Any]:
    """Train ``run`` (or resume it, or reuse it when finished); its ``done.json`` record.

    Within a ``stretch`` that ends before the run does, the run stops at the deadline with its
    ``last.ckpt`` written and the record says ``"unfinished": True`` (no ``done.json``).
    """
    run_dir = out / "runs" / run.name
    config, config_digest = run.config(recipe, out), run.digest(recipe, out)
    done_path = run_dir / "done.json"
    if stretch.state_dir is not None:
        restored = run_state.restore(stretch.state_dir, run.name, run_dir, checkpoint_of(run_dir), config_digest)
        if restored is not None:
            log(f"{run.name}: restored step {restored} from {stretch.state_dir}")
    if done_path.is_file():
        done = json.loads(done_path.read_text())
        if done.get("config_digest") != config_digest:
            raise ConfigError(
                f"run {run.name} in {out} was trained with another configuration; delete {run_dir} to retrain it, or choose another --out"
            )
        return done
    if stretch.accelerator is not None:  # after the digest: where a run trains is not what it is
        config["trainer"]["accelerator"] = stretch.accelerator
    config_path = run_dir / "train.yaml"
    atomic_write_text(config_path, yaml.safe_dump(config, sort_keys=False))
    resuming = checkpoint_of(run_dir).is_file()
    argv = ["fit", "--config", str(config_path), "--ckpt_path", "last"]
    if stretch.deadline is not None:
        left = stretch.deadline - time.time()
        if left < stretch.min_seconds:
            return _unfinished(run, recipe, max(run_state.steps_of(checkpoint_of(run_dir)), 0))
        argv += ["--stop_at.deadline", repr(stretch.deadline)]
    log(f"{'resuming' if resuming else 'training'} {run.name} ({run.steps(recipe)} steps)")
    with _environment(**_wandb_environment(recipe)), run_state.training_clock(run_dir, config_digest) as progress:
        _training().run_cli(argv)
    steps = run_state.steps_of(checkpoint_of(run_dir))
    if stretch.deadline is not None and steps < run.steps(recipe) and time.time() >= stretch.deadline - 1:
        if stretch.state_dir is not None:
            run_state.save(stretch.state_dir, run.name, run_dir, checkpoint_of(run_dir))
        return _unfinished(run, recipe, steps)
    if steps != run.steps(recipe):
        raise ConfigError(
            f"run {run.name} ended at step {steps}, not {run.steps(recipe)}; check the training section of the recipe "
            "(max_steps and val_check_interval are set by the recipe)"
        )
    done = {
        "run": run.name,
        "steps": steps,
        "config_digest": config_digest,
        "wall_time": progress["wall_time"],  # over every invocation that trained it
        "checkpoint": str(checkpoint_of(run_dir).relative_to(out)),
        "shares": term_shares(run_dir),
    }
    atomic_write_json(done_path, done)
    if stretch.state_dir is not None:
        run_state.save(stretch.state_dir, run.name, run_dir, checkpoint_of(run_dir))
    return done


def _unfinished(run: Run, recipe: Recipe, steps: int) -> dict[str, Any]:
    """The record of a run the stretch's deadline stopped at ``steps`` (or did not let start)."""
    return {"run": run.name, "steps": steps, "of": run.steps(recipe), "unfinished": True}


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
    last = steps[-max(1, math.ceil(len(steps) * tail)) :]
    keys = rows[last[-1]].keys()
    return {k: sum(rows[s].get(k, 0.0) for s in last) / len(last) for k in keys}


def train_runs(
    runs: Sequence[Run], recipe: Recipe, out: Path, log: Log = print, jobs: int = 1, stretch: Stretch = WHOLE_RUNS
) -> dict[str, dict[str, Any]]:
    """:func:`train_run` for every run, ``jobs`` at a time; run name -> ``done.json`` record, in ``runs``' order.

    With ``jobs`` > 1 each run trains in a worker process with ``1/jobs`` of this process's
    threads, its output going to ``runs/<run>/train.log``: small codecs use threads poorly,
    so on 2 cores two one-thread runs at once finish ~1.5x sooner than one after the
    other with two threads each (``benchmarks/bench_experiment_jobs.py``). Results match a
    one-job run up to float rounding (thread counts change the order of sums); finished runs
    are reused either way. Progress lines count against all of ``runs``, finished ones included.
    ``stretch``: when to stop and where the runs' state is kept (:class:`Stretch`); a run it
    stops has an ``"unfinished"`` record.
    """
    check_processes(jobs, "--jobs")
    done = finished_runs(runs, recipe, out)
    pending = [r for r in runs if r.name not in done]
    if jobs == 1 or len(pending) < 2:
        for run in pending:
            log(f"[{len(done) + 1}/{len(runs)}] {run.name}")
            done[run.name] = train_run(run, recipe, out, log, stretch)
        return {r.name: done[r.name] for r in runs}
    workers = min(jobs, len(pending))
    train_log = out / "runs" / "<run>" / "train.log"
    log(
        f"training {len(pending)} runs, {workers} at a time with {threads_per_worker(workers)} thread(s) each; each run's output: {train_log}"
    )

    def finished(index: int, record: dict[str, Any]) -> None:
        done[pending[index].name] = record
        if record.get("unfinished"):
            log(f"[{len(done)}/{len(runs)}] {pending[index].name} stopped at step {record['steps']} of {record['of']} (time's up)")
        else:
            log(f"[{len(done)}/{len(runs)}] {pending[index].name} done ({record['wall_time']:.0f} s)")

    run_in_workers(
        train_in_worker,
        [(run, recipe, out, stretch) for run in pending],
        workers,
        on_done=finished,
        crashed=f"a training worker stopped abruptly (killed, or out of memory?); the unfinished runs' output is in "
        f"{train_log}; rerun the same command to resume",
    )
    return {r.name: done[r.name] for r in runs}


def finished_runs(runs: Sequence[Run], recipe: Recipe, out: Path) -> dict[str, dict[str, Any]]:
    """The ``done.json`` records of the finished ``runs``; a run trained with another configuration is refused."""
    return {r.name: train_run(r, recipe, out) for r in runs if (out / "runs" / r.name / "done.json").is_file()}


def train_in_worker(run: Run, recipe: Recipe, out: Path, stretch: Stretch = WHOLE_RUNS) -> dict[str, Any]:
    """:func:`train_run` in a worker process, its output (Lightning's and torch's too) in the run's ``train.log``."""
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
    return train_run(run, recipe, out, log=print, stretch=stretch)


def unfinished(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of runs a stretch stopped."""
    return [r for r in records.values() if r.get("unfinished")]


__all__ = [
    "Run",
    "Stretch",
    "WHOLE_RUNS",
    "unfinished",
    "compared_runs",
    "pretraining_runs",
    "training_phases",
    "checkpoint_of",
    "train_run",
    "train_runs",
    "finished_runs",
    "term_shares",
]
