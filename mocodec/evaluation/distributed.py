"""Scale-out evaluation: split a dataset into shards, code each in its own process, merge exactly.

Every per-image record of ``eval-task`` and ``eval-rd`` depends on its image alone, so
a dataset can be split across processes and the records put back together: the merged
file equals the single-process one record for record (timings aside, which are
measured), because the means in ``results`` are recomputed from the merged per-image
records, never averaged from per-shard means.

**Shards.** ``Shard(I, N)`` (``--shard I/N``, ``0 <= I < N``) takes every N-th sample,
starting at the I-th, of the samples sorted by id: shards are disjoint, cover the
dataset, differ in size by at most one image, and do not depend on the order in which
a file system lists the images. A shard's results file carries
``"shard": {"index": I, "count": N}``; :func:`merge_results` checks that the shards of
one run are all there, once each, and drops the key.

**Three ways to run** (the work of one shard is the same in all three):

- ``--shard I/N --out part_I.json`` on N machines of a scheduler, then
  ``mocodec merge OUT part_*.json``;
- ``--devices N``: N processes spawned here (``torch.multiprocessing``, each with its
  share of the CPU threads), then merged into ``--out`` by this process;
- under ``torchrun`` (``RANK``/``WORLD_SIZE`` set): each rank codes its shard, a gloo
  barrier waits for all of them, rank 0 merges.

With ``--devices`` or ``torchrun`` the shards' files are ``OUT.shard-I-of-N.json``
beside ``--out``: an interrupted run resumes from them, and they are deleted once
merged. The merge needs no process group and no task model: only the records.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from mocodec.errors import ConfigError, MocodecError

T = TypeVar("T")
SHARD_KEY = "shard"
# Shards finish at different times; rank 0 waits at the final barrier for the slowest
# one, which may take hours on a large dataset (gloo's default would give up at 30 min).
BARRIER_TIMEOUT = timedelta(hours=72)
_SHARD_TEXT = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


# --------------------------------------------------------------------------- shards


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): every ``count``-th item of the items sorted by id."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (self.count >= 1 and 0 <= self.index < self.count):
            raise ConfigError(f"shard {self.index}/{self.count} does not exist; write I/N with 0 <= I < N, e.g. 0/4 ... 3/4")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"I/N"`` -> ``Shard(I, N)``."""
        m = _SHARD_TEXT.fullmatch(text)
        if m is None:
            raise ConfigError(f"cannot read shard '{text}'; write I/N with 0 <= I < N, e.g. --shard 0/4")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def from_environment(cls) -> "Shard | None":
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


def restrict(doc: dict[str, Any], ids: set[str]) -> dict[str, Any]:
    """A copy of an eval-task document holding only the records (and skipped images) of ``ids``."""
    out = json.loads(json.dumps(doc))
    for entry in out["entries"]:
        entry["per_image"] = [r for r in entry["per_image"] if r["id"] in ids]
    out["skipped"] = [s for s in out["skipped"] if s["id"] in ids]
    return out


# --------------------------------------------------------------------------- merging


def _read(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"results file {path} does not exist; pass the files that eval-task/eval-rd wrote") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"{path} is not a results file (not JSON); pass the files that eval-task/eval-rd wrote") from None
    if not isinstance(doc, dict) or not ("entries" in doc if doc.get("mocodec") == "eval-task" else "per_image" in doc):
        raise ConfigError(f"{path} is not an eval-task or eval-rd results file with per-image records; it cannot be merged")
    return doc


def _kind(doc: dict[str, Any]) -> str:
    return "eval-task" if doc.get("mocodec") == "eval-task" else "eval-rd"


def _check_shards(named: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Shard files of one run: all of them, each once, of one count; or no shard files at all."""
    shards = [(name, doc.get(SHARD_KEY)) for name, doc in named]
    if all(s is None for _, s in shards):
        return
    loose = [name for name, s in shards if s is None]
    if loose:
        raise ConfigError(f"{loose[0]} is not a shard file but the others are; merge the shard files of one run")
    counts = {s["count"] for _, s in shards}
    if len(counts) > 1:
        raise ConfigError(f"the files are shards of runs split in {' and '.join(map(str, sorted(counts)))}; merge the shard files of one run")
    (count,) = counts
    seen: dict[int, str] = {}
    for name, s in shards:
        if s["index"] in seen:
            raise ConfigError(f"{seen[s['index']]} and {name} are both shard {s['index']}/{count}; give each shard once")
        seen[s["index"]] = name
    missing = [i for i in range(count) if i not in seen]
    if missing:
        raise ConfigError(f"shard {missing[0]}/{count} is missing ({len(seen)} of {count} given); pass every shard's file")


def _same(named: Sequence[tuple[str, dict[str, Any]]], key: str, what: str) -> None:
    (first, doc0), *rest = named
    for name, doc in rest:
        if doc.get(key) != doc0.get(key):
            raise ConfigError(
                f"{first} and {name} hold results of different {what} "
                f"({json.dumps(doc0.get(key), sort_keys=True)} vs {json.dumps(doc.get(key), sort_keys=True)}); merge files of one run"
            )


def summary_task(identity: dict[str, Any]):
    """A task object able to ``summarize`` records of the task ``identity`` names, without building its model.

    The Task contract makes ``summarize`` a function of the records alone, so merging
    needs the task's class, not its (possibly hub-hosted) weights.
    """
    import typing

    from mocodec.tasks import TASKS, Task

    factory = TASKS.get(str(identity.get("name")))
    cls = factory if isinstance(factory, type) else typing.get_type_hints(factory).get("return")
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"task '{identity.get('name')}' does not declare its Task class; merge cannot summarise its records")
    return cls.__new__(cls)


def _merge_task(named: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    from mocodec.evaluation.sweep import SweepResults

    for key, what in (("version", "versions"), ("task", "tasks"), ("dataset", "datasets"), ("metrics", "metrics")):
        _same(named, key, what)
    first = named[0][1]
    merged = {k: v for k, v in first.items() if k not in (SHARD_KEY, "entries", "skipped")}
    entries: dict[str, dict[str, Any]] = {}
    owner: dict[tuple[str, str, str], str] = {}  # (curve, point, id) -> the file holding it
    point_owner: dict[tuple[str, str], str] = {}  # (curve, point) -> the first file describing it
    skipped: dict[str, dict[str, Any]] = {}
    for name, doc in named:
        for s in doc["skipped"]:
            skipped[s["id"]] = s
        for entry in doc["entries"]:
            into = entries.setdefault(entry["name"], {**entry, "points": dict(entry["points"]), "per_image": []})
            for point, identity in entry["points"].items():
                first_file = point_owner.setdefault((entry["name"], point), name)
                if into["points"].setdefault(point, identity) != identity:
                    raise ConfigError(
                        f"curve '{entry['name']}' point {point} was coded with different codecs in {first_file} "
                        f"and {name} ({identity['codec']} weights {identity['weights']}); merge files of one run"
                    )
            for r in entry["per_image"]:
                key = (entry["name"], r["point"], r["id"])
                if key in owner:
                    raise ConfigError(f"{owner[key]} and {name} both hold image '{r['id']}' of curve '{entry['name']}' point {r['point']}: "
                                      "the files overlap; give each shard once")
                owner[key] = name
                into["per_image"].append(r)
    merged["skipped"] = sorted(skipped.values(), key=lambda s: s["id"])
    merged["entries"] = list(entries.values())
    results = SweepResults(merged)
    results.summarize(summary_task(first["task"]))
    return {k: results.doc[k] for k in first if k != SHARD_KEY}  # the key order of a single-process file


def _merge_rd(named: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    from mocodec.evaluation.rd import RD_METRICS, merge_key
    from mocodec.evaluation.results import summarise

    (first, doc0), *rest = named
    for name, doc in rest:
        if doc.get("name") != doc0.get("name"):
            raise ConfigError(f"{first} and {name} hold different codecs ({doc0.get('name')} vs {doc.get('name')}); merge files of one run")
    owner: dict[tuple, str] = {}
    records: list[dict[str, Any]] = []
    for name, doc in named:
        for r in doc["per_image"]:
            key = merge_key(r)
            if key in owner:
                raise ConfigError(f"{owner[key]} and {name} both hold image '{r['image']}' at quality {r['quality']}: "
                                  "the files overlap; give each shard once")
            owner[key] = name
            records.append(r)
    records.sort(key=merge_key)
    skipped = sorted({tuple(s) for _, doc in named for s in doc.get("skipped", [])})
    return json.loads(json.dumps(summarise(doc0["name"], doc0["description"], records, RD_METRICS, {"skipped": skipped})))


def merge_results(named: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One results document from ``(source name, document)`` pairs of disjoint images (see the module docstring)."""
    if not named:
        raise ConfigError("no results files to merge")
    kinds = {_kind(doc) for _, doc in named}
    if len(kinds) > 1:
        raise ConfigError("the files mix eval-task and eval-rd results; merge files of one command")
    _check_shards(named)
    return _merge_task(named) if kinds == {"eval-task"} else _merge_rd(named)


def merge_files(paths: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """:func:`merge_results` of the files at ``paths``."""
    return merge_results([(str(p), _read(p)) for p in paths])


# --------------------------------------------------------------------------- launching


ShardJob = Callable[[Shard, Path], None]  # codes one shard and writes its results file


def run_sharded(job: ShardJob, out: str | os.PathLike, devices: int = 1) -> dict[str, Any] | None:
    """Run ``job`` on every shard and merge the shards' files into ``out``.

    Under ``torchrun`` this process is one rank: it runs its own shard, and rank 0 merges
    after a barrier (other ranks return None). Otherwise ``devices`` processes are
    spawned, one per shard. Returns the merged document (rank 0 / the launching process).
    """
    from mocodec.evaluation.results import write_results

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
        _spawn(job, out, devices)
        count = devices
    parts = [Shard(i, count).part_path(out) for i in range(count)]
    merged = merge_files(parts)
    write_results(out, merged)
    for part in parts:
        part.unlink()
    return merged


def _run_rank(job: ShardJob, shard: Shard, out: Path) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)  # env:// from torchrun; gloo: CPU is enough for a barrier
    try:
        job(shard, shard.part_path(out))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _spawn(job: ShardJob, out: Path, devices: int) -> None:
    import torch
    import torch.multiprocessing as mp

    threads = max(1, torch.get_num_threads() // devices)  # the processes share this process's cores
    try:
        mp.start_processes(_worker, args=(job, out, devices, threads), nprocs=devices, start_method="spawn")
    except mp.ProcessRaisedException as exc:
        raise MocodecError(f"a shard failed: {_last_line(str(exc))}") from None
    except mp.ProcessExitedException as exc:
        raise MocodecError(f"shard {exc.error_index}/{devices} exited with status {exc.exit_code}; see its output above") from None


def _worker(index: int, job: ShardJob, out: Path, devices: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    shard = Shard(index, devices)
    try:
        job(shard, shard.part_path(out))
    except MocodecError as exc:  # one line for the user, not a traceback from another process
        raise MocodecError(f"shard {shard}: {exc}") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else text
    return last.split(": ", 1)[1] if re.match(r"[\w.]+(Error|Exception): ", last) else last


__all__ = ["Shard", "restrict", "merge_results", "merge_files", "run_sharded", "summary_task", "SHARD_KEY"]
