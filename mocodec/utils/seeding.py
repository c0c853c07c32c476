"""Seeded construction: models built without weights come out the same in every process and on every CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn


@contextlib.contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded by ``seed``; the caller's random state is restored after.

    Codecs and judges built without weights use it, so a file written with a random-init
    codec decodes in any process and a resumed sweep continues with the same judge.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Run the block with torch's default floating dtype set to ``dtype``; the caller's is restored after."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def portable_init(build: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """``build()`` under ``seed``, in float64, rounded to float32: the same weights on every CPU.

    torch's vectorised initialisers round differently with AVX2 and with scalar kernels (seen:
    1 ulp in most convolution weights of a seeded model, ATEN_CPU_CAPABILITY=avx2 against
    default). Built in float64, the differences are ~1e-16 and vanish when rounded to float32,
    except for a value within one float64 ulp of a float32 rounding boundary (about 1 in 10^8).
    """
    with seeded(seed), default_dtype(torch.float64):
        model = build()
    return model.float()
