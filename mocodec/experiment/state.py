"""Training state that outlives the machine: each run's resumable checkpoint kept in a folder that travels.

A long recipe trains over many sessions, on machines that are restarted or replaced: the run
folders under ``experiments/`` are scratch, so ``mocodec experiment --state DIR`` keeps, after
every stretch, what resuming needs in ``DIR`` (a folder to commit, or to carry to a GPU machine
and back) and restores it before training:

- ``DIR/<run>.ckpt``: the run's ``last.ckpt`` -- weights, optimiser and schedule state, step
  counters, random states -- with the optimisers' moment estimates stored in bfloat16 (half
  their size; put back in float32 on restore: a resumed run continues with moments rounded to
  8 significant bits, which changes its next steps by a fraction of a percent of their size);
- ``DIR/<run>.json``: the run's progress record (config digest, training wall time summed over
  stretches, counted every minute while a run trains, so a stretch killed with its machine keeps
  its time) and, once it has finished, its ``done.json`` record.

A finished run never resumes (its record is reused; runs that start from it take its weights with
fresh optimisers), so its kept checkpoint leaves the optimisers' state out: half the size of a folder
that is committed after every stretch.

A kept state replaces a run's local checkpoint only when it holds more steps, so restoring
never rolls a run back; a state kept for another configuration of the run is refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from mocodec.errors import ConfigError
from mocodec.files import atomic_write_bytes, atomic_write_json
from mocodec.weights import load_checkpoint

STATE_KEY = "mocodec_state"  # {"moments": "bfloat16"} or, for a finished run, {"moments": None}: how they were trimmed
PROGRESS = "progress.json"  # in a run folder: {"config_digest", "wall_time"} summed over invocations
DONE = "done.json"


def _cast_moments(optimizer_states: list[dict[str, Any]], dtype: torch.dtype) -> list[dict[str, Any]]:
    """The optimisers' per-parameter state with every floating-point tensor of more than one element in ``dtype``."""
    cast = []
    for optimizer in optimizer_states:
        states = {
            index: {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() and v.numel() > 1 else v for k, v in entry.items()}
            for index, entry in optimizer.get("state", {}).items()
        }
        cast.append({**optimizer, "state": states})
    return cast


def trim(checkpoint: Mapping[str, Any], finished: bool = False) -> dict[str, Any]:
    """``checkpoint`` as a state folder keeps it: the optimisers' moments in bfloat16 (none for a ``finished`` run), the rest as it was."""
    moments = list(checkpoint.get("optimizer_states", []))
    return {
        **checkpoint,
        "optimizer_states": [] if finished else _cast_moments(moments, torch.bfloat16),
        STATE_KEY: {"moments": None if finished else "bfloat16"},
    }


def untrim(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """A kept checkpoint as its run folder holds it: the moments back in float32, what the optimisers hold."""
    restored = {k: v for k, v in checkpoint.items() if k != STATE_KEY}
    if checkpoint.get(STATE_KEY, {}).get("moments"):
        restored["optimizer_states"] = _cast_moments(list(checkpoint.get("optimizer_states", [])), torch.float32)
    return restored


def steps_of(path: Path) -> int:
    """The global step a checkpoint holds; -1 when there is none."""
    return int(load_checkpoint(path).get("global_step", -1)) if path.is_file() else -1


def _save_checkpoint(checkpoint: Mapping[str, Any], path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


@contextlib.contextmanager
def training_clock(run_dir: Path, config_digest: str, interval: float = 60.0) -> Iterator[dict[str, Any]]:
    """Count the wall time of the training inside the block into the run's progress record, every ``interval`` s.

    A run killed with its machine (the case kept state is for) has then counted its time up to the
    last tick, not lost the whole stretch: the record is what the run cost, work lost with the kill
    included. The dict yielded holds the final record once the block ends.
    """
    base = float(_read(run_dir / PROGRESS).get("wall_time", 0.0))
    start, stop, record = time.monotonic(), threading.Event(), {}

    def write() -> None:
        record.update(config_digest=config_digest, wall_time=base + time.monotonic() - start)
        atomic_write_json(run_dir / PROGRESS, record)

    def tick() -> None:
        while not stop.wait(interval):
            write()

    ticker = threading.Thread(target=tick, name="training-clock", daemon=True)
    ticker.start()
    try:
        yield record
    finally:
        stop.set()
        ticker.join()
        write()


def restore(state_dir: Path, run_name: str, run_dir: Path, checkpoint: Path, config_digest: str) -> int | None:
    """Put ``run_name``'s kept state into its run folder where it is further on; the step restored, or None."""
    kept, record = state_dir / f"{run_name}.ckpt", _read(state_dir / f"{run_name}.json")
    if not kept.is_file():
        return None
    if record.get("config_digest") != config_digest:
        raise ConfigError(
            f"the state kept for run {run_name} in {state_dir} was trained with another configuration; "
            f"delete {kept} to start that run afresh, or pass another --state folder"
        )
    saved = load_checkpoint(kept)
    step = int(saved.get("global_step", -1))
    if step <= steps_of(checkpoint):
        return None
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    _save_checkpoint(untrim(saved), checkpoint)
    atomic_write_json(run_dir / PROGRESS, {"config_digest": config_digest, "wall_time": record.get("wall_time", 0.0)})
    if record.get("done"):
        atomic_write_json(run_dir / DONE, record["done"])
    return step


def save(state_dir: Path, run_name: str, run_dir: Path, checkpoint: Path) -> int | None:
    """Keep ``run_name``'s checkpoint (trimmed), progress and finished record in ``state_dir``; the step kept, or None."""
    kept = state_dir / f"{run_name}.ckpt"
    if not checkpoint.is_file():
        return None
    current = load_checkpoint(checkpoint)
    step = int(current.get("global_step", -1))
    if step <= steps_of(kept):
        return None
    state_dir.mkdir(parents=True, exist_ok=True)
    done = _read(run_dir / DONE)
    _save_checkpoint(trim(current, finished=bool(done)), kept)
    atomic_write_json(state_dir / f"{run_name}.json", {**_read(run_dir / PROGRESS), "steps": step, "done": done or None})
    return step


__all__ = ["trim", "untrim", "steps_of", "training_clock", "restore", "save", "STATE_KEY"]
