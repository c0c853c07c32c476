"""Seeded construction: models built without weights come out the same in every process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded by ``seed``; the caller's random state is restored after.

    Codecs and judges built without weights use it, so a file written with a random-init
    codec decodes in any process and a resumed sweep continues with the same judge.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
