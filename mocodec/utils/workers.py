"""The one worker-pool helper: run calls in spawned processes, each with its share of the CPU threads.

Training runs of an experiment and shards of a split evaluation both run here. Processes
are *spawned*, never forked: a forked copy of a process whose torch threads already ran
can deadlock. A worker that dies abruptly (SIGKILL, out of memory) ends the pool with one
line that says what to do; an error raised in a worker stops the pool (calls already
running finish) and is raised here, its type and message intact.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import torch

from mocodec.errors import ConfigError, MocodecError
from mocodec.utils.memory import keep_freed_memory

T = TypeVar("T")


def check_processes(count: Any, option: str, minimum: int = 1) -> None:
    """Refuse a process count (``--jobs``, ``--workers``) that is not a whole number >= ``minimum``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < minimum:
        raise ConfigError(f"{option} must be a whole number >= {minimum}, got {count!r}")


def threads_per_worker(workers: int) -> int:
    """This process's torch threads shared among ``workers`` processes (at least one each)."""
    return max(1, torch.get_num_threads() // max(1, workers))


def _invoke(fn: Callable[..., T], threads: int, args: tuple[Any, ...]) -> T:
    torch.set_num_threads(threads)
    keep_freed_memory()  # as the command that spawned this process
    return fn(*args)


def run_in_workers(
    fn: Callable[..., T],
    calls: Sequence[tuple[Any, ...]],
    workers: int,
    *,
    on_done: Callable[[int, T], None] | None = None,
    crashed: str = "a worker process stopped abruptly (killed, or out of memory?)",
) -> list[T]:
    """``[fn(*args) for args in calls]``, ``workers`` calls at a time in spawned processes.

    ``fn`` must be importable by name (a module-level function); each worker gets
    :func:`threads_per_worker` threads. ``on_done(index, result)`` is called here as each
    call finishes, in the order they finish. ``crashed``: the message of the error raised
    when a worker dies without a Python exception.
    """
    if not calls:
        return []
    workers = min(workers, len(calls))
    threads = threads_per_worker(workers)
    results: dict[int, T] = {}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_invoke, fn, threads, tuple(args)): i for i, args in enumerate(calls)}
        try:
            remaining = set(futures)
            while remaining:
                finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = futures[future]
                    try:
                        results[index] = future.result()
                    except BrokenProcessPool:
                        raise MocodecError(crashed) from None
                    if on_done is not None:
                        on_done(index, results[index])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # calls already running finish (their files stay usable)
            raise
    return [results[i] for i in range(len(calls))]
