"""Scale-out evaluation: split a dataset into shards and run each in its own process.

Every per-image record of a sweep depends on its image alone, so a dataset can be split
across processes and the records put back together (:func:`mocodec.evaluation.results.merge_documents`):
the merged file equals the single-process one record for record (timings aside, which are
measured), because its means are recomputed from the merged records.

**Shards.** ``Shard(I, N)`` (``--shard I/N``, ``0 <= I < N``) takes every N-th sample,
starting at the I-th, of the samples sorted by id: shards are disjoint, cover the
dataset, differ in size by at most one image, and do not depend on the order in which
a file system lists the images. A shard's results file carries
``"shard": {"index": I, "count": N}``; the merge checks that the shards of one run are
all there, once each, and drops the key.

**Three ways to run** (the work of one shard is the same in all three):

- ``--shard I/N --out part_I.json`` on N machines of a scheduler, then
  ``mocodec merge OUT part_*.json``;
- ``--devices N``: N processes spawned here (:func:`mocodec.utils.workers.run_in_workers`,
  each with its share of the CPU threads), merged into ``--out`` by this process;
- under ``torchrun`` (``RANK``/``WORLD_SIZE`` set): each rank codes its shard, a gloo
  barrier waits for all of them, rank 0 merges.

With ``--devices`` or ``torchrun`` the shards' files are ``OUT.shard-I-of-N.json``
beside ``--out``: an interrupted run resumes from them, and they are deleted once merged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import torch.distributed as dist

from mocodec.errors import ConfigError, MocodecError
from mocodec.utils.workers import run_in_workers

T = TypeVar("T")
# Shards finish at different times; rank 0 waits at the final barrier for the slowest
# one, which may take hours on a large dataset (gloo's default would give up at 30 min).
BARRIER_TIMEOUT = timedelta(hours=72)
_SHARD_TEXT = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
ShardJob = Callable[["Shard", Path], None]  # codes one shard and writes its results file


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): every ``count``-th item of the items sorted by id."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (self.count >= 1 and 0 <= self.index < self.count):
            raise ConfigError(f"shard {self.index}/{self.count} does not exist; write I/N with 0 <= I < N, e.g. 0/4 ... 3/4")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` -> ``Shard(I, N)``."""
        m = _SHARD_TEXT.fullmatch(text)
        if m is None:
            raise ConfigError(f"cannot read shard '{text}'; write I/N with 0 <= I < N, e.g. --shard 0/4")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def from_environment(cls) -> Shard | None:
        """This process's shard under ``torchrun`` (``RANK``/``WORLD_SIZE``); None when not launched by it."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ["RANK"]), world) if world > 1 and "RANK" in os.environ else None

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def as_dict(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}

    def select(self, items: Sequence[T], key: Callable[[T], str]) -> list[T]:
        """This shard's items: every ``count``-th of ``items`` sorted by ``key``."""
        return sorted(items, key=key)[self.index :: self.count]

    def part_path(self, out: str | os.PathLike) -> Path:
        """Where this shard's results go when a run of ``--out OUT`` is split: ``OUT.shard-I-of-N.json``."""
        out = Path(out)
        return out.with_name(f"{out.stem}.shard-{self.index}-of-{self.count}{out.suffix or '.json'}")


def split_run(shard: str | None, devices: int) -> tuple[Shard | None, bool]:
    """What ``--shard``/``--devices`` (and torchrun) ask for: (this run's shard or None, True when processes are launched)."""
    one = Shard.parse(shard) if shard else None
    launched = devices > 1 or Shard.from_environment() is not None
    if one is not None and launched:
        raise ConfigError("--shard runs one shard in this process; drop --devices (and torchrun), or drop --shard")
    return one, launched


def launch(job: ShardJob, out: str | os.PathLike, devices: int = 1) -> list[Path] | None:
    """Run ``job`` on every shard; the shards' files, for the process that merges them (None on other torchrun ranks).

    Under ``torchrun`` this process is one rank: it runs its own shard, and rank 0 goes on
    after a barrier. Otherwise ``devices`` processes are spawned, one per shard.
    """
    out = Path(out)
    launched = Shard.from_environment()
    if launched is not None:
        if devices > 1:
            raise ConfigError("the run is launched by torchrun already; drop --devices (torchrun's --nproc-per-node sets the processes)")
        _run_rank(job, launched, out)
        if launched.index != 0:
            return None
        count = launched.count
    else:
        if devices < 1:
            raise ConfigError(f"--devices must be >= 1, got {devices}")
        shards = [Shard(i, devices) for i in range(devices)]
        run_in_workers(
            _run_shard,
            [(job, shard, out) for shard in shards],
            devices,
            crashed=f"a shard's process stopped abruptly (killed, or out of memory?); rerun the same command to resume "
            f"from the shard files beside {out}",
        )
        count = devices
    return [Shard(i, count).part_path(out) for i in range(count)]


def _run_shard(job: ShardJob, shard: Shard, out: Path) -> None:
    try:
        job(shard, shard.part_path(out))
    except MocodecError as exc:  # one line for the user, naming the shard, not a traceback from another process
        raise MocodecError(f"shard {shard}: {exc}") from None
    except Exception as exc:
        raise MocodecError(f"shard {shard} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from None


def _run_rank(job: ShardJob, shard: Shard, out: Path) -> None:
    dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)  # env:// from torchrun; gloo: CPU is enough for a barrier
    try:
        job(shard, shard.part_path(out))
        dist.barrier()
    finally:
        dist.destroy_process_group()


__all__ = ["Shard", "split_run", "launch", "BARRIER_TIMEOUT"]
