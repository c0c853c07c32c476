"""Small real sweeps for the report tests: JPEG and WebP on photo crops, a hand-made judge with hostile class names.

The classification sweep names one image ``<script>alert(1)</script>.png`` and its judge's
classes ``<b>bold</b> finch`` and ``<img src=x onerror=alert(1)>``: a page must show them as
text, never as markup.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from report_helpers import HOSTILE_ID, QUALITIES, HandTask, write_crops

from mocodec.evaluation.plan import plan_curves
from mocodec.evaluation.sweep import FidelityOnly, evaluate
from mocodec.tasks.base import Sample


@pytest.fixture(scope="session")
def report_sweeps(tmp_path_factory, astronaut) -> dict[str, Path]:
    """``{"rd": eval-rd results (3 photos, 2 kept), "task": classification results (4 photos, 2 kept + the hostile one pinned)}``."""
    root = tmp_path_factory.mktemp("report-sweeps")
    curves = plan_curves(["jpeg,webp"], [QUALITIES])
    write_crops(root / "rd-images", astronaut, 3)
    evaluate(FidelityOnly(), curves, root / "rd.json", root / "rd-images", fidelity=("psnr-rgb", "ms-ssim"), keep_crops=2)
    paths = write_crops(root / "task-images", astronaut, 4)
    task = HandTask(
        [Sample(HOSTILE_ID, paths[0], 2), Sample("tile1.png", paths[1], 0), Sample("tile2.png", paths[2]), Sample("tile3.png", paths[3], 3)]
    )
    evaluate(task, curves, root / "task.json", fidelity=("psnr-rgb",), keep_crops=2, keep_images=[HOSTILE_ID])
    return {"rd": root / "rd.json", "task": root / "task.json"}
