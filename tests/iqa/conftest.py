"""Tiny voters and reference images for the IQA tests (no weights, milliseconds per call)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from iqa_helpers import ProjectionVoter
from PIL import Image


@pytest.fixture(scope="module")
def tiny_voters() -> list[ProjectionVoter]:
    return [ProjectionVoter(f"proj{k}", seed=k) for k in range(3)]


@pytest.fixture(scope="module")
def reference_folder(tmp_path_factory, astronaut) -> Path:
    """Three 48 x 64 crops of a real photograph as PNG files (shared by a module's tests: read only)."""
    folder = tmp_path_factory.mktemp("references")
    for k, (top, left) in enumerate([(40, 160), (200, 100), (300, 300)]):
        Image.fromarray(np.ascontiguousarray(astronaut[top : top + 48, left : left + 64])).save(folder / f"crop{k}.png")
    return folder
