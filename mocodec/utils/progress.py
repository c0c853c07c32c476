"""The progress bar of long loops on a terminal: the ``progress`` callable library functions accept.

Library loops (sweeps, scoring, PCMP builds, experiments) take ``progress(items, total, desc)``
and iterate what it returns; the command line passes :func:`progress_bar`, Python callers
may pass it, their own, or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress_bar(items: Iterable[T], total: int, desc: str) -> Iterable[T]:
    """``items`` with a bar of ``total`` images named ``desc`` on stderr; silent when stderr is not a terminal, gone when done."""
    return tqdm(items, total=total, desc=desc, unit="img", leave=False, disable=None)
