"""Rate-distortion / rate-task figures with matplotlib (headless: the Agg backend)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from mocodec.files import atomic_write_bytes

AXIS_LABELS = {
    "bpp": "rate (bits per pixel, file size)",
    "psnr-rgb": "PSNR (RGB) [dB]",
    "ms-ssim": "MS-SSIM",
}


def _pyplot():
    os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "mocodec-matplotlib"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    entries: Sequence[dict[str, Any]],
    out: str | Path,
    metrics: Sequence[str] = ("psnr-rgb",),
    x: str = "bpp",
    title: str | None = None,
    labels: dict[str, str] | None = None,
) -> Path:
    """One panel per metric, one curve per results entry; saved as PNG (or PDF by extension)."""
    plt = _pyplot()
    labels = {**AXIS_LABELS, **(labels or {})}
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for entry in entries:
            res = entry["results"]
            pts = sorted(
                (a, b) for a, b in zip(res.get(x, []), res.get(metric, []))
                if isinstance(a, (int, float)) and isinstance(b, (int, float))
            )
            if pts:
                ax.plot(*zip(*pts), marker="o", label=entry.get("name", "?"))
        ax.set_xlabel(labels.get(x, x))
        ax.set_ylabel(labels.get(metric, metric))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=out.suffix.lstrip(".").lower() or "png", dpi=130)
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return out
