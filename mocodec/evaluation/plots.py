"""Rate-distortion and rate-task figures with matplotlib (headless: the Agg backend).

One path for every sweep: :func:`plot_results` draws one panel per (results file, metric)
that varies with the rate -- PSNR and MS-SSIM of ``eval-rd``, every task metric and the
fidelity metrics of ``eval-task`` -- with axis labels and directions from the metric
declarations the file holds. Curves of other files (published CompressAI curves, earlier
runs) are drawn beside in every panel that has their metric. A curve keeps its colour
in every panel, so one codec or distortion term reads the same across tasks. The format
follows the file name (``.png``, ``.pdf``, ``.svg``). :func:`plot_intervals` draws the
averaged curves with interval bars of an experiment.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mocodec.errors import ConfigError
from mocodec.evaluation.metrics import CODING, FIDELITY, RATE
from mocodec.files import atomic_write_bytes

RATE_LABEL = CODING[0].label


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed), its config under a temporary folder."""
    os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "mocodec-matplotlib"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _points(entry: dict[str, Any], x: str, metric: str) -> list[tuple[float, float]]:
    res = entry.get("results", {})
    return sorted((a, b) for a, b in zip(res.get(x, []), res.get(metric, [])) if _number(a) and _number(b))


def _draw(
    ax,
    entries: Sequence[dict[str, Any]],
    x: str,
    metric: str,
    xlabel: str,
    ylabel: str,
    colours: dict[str, Any] | None = None,
    dashed: Sequence[dict[str, Any]] = (),
) -> None:
    for entry in [*entries, *dashed]:
        pts = _points(entry, x, metric)
        if pts:
            name = entry.get("name", "?")
            ax.plot(
                *zip(*pts),
                marker="o",
                markersize=4,
                label=name,
                color=(colours or {}).get(name),
                linestyle="--" if any(entry is d for d in dashed) else "-",
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def _save(plt, fig, out: str | Path) -> Path:
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower() or "png"
    if fmt not in fig.canvas.get_supported_filetypes():
        plt.close(fig)
        raise ConfigError(f"cannot save a figure as '.{fmt}'; name the file .png, .pdf or .svg")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=130)
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return out


def rate_task_panels(documents: Sequence[dict[str, Any]], metrics: Sequence[str] | None = None) -> list[tuple[dict[str, Any], str]]:
    """The (document, metric) pairs a figure shows.

    Every metric of each file that varies with the rate and has a value somewhere: metrics
    measured on the originals only (``reference``) and label-based metrics of an unlabeled
    dataset are left out. ``metrics`` narrows the choice.
    """
    panels = []
    for doc in documents:
        for metric, meta in doc.get("metrics", {}).items():
            if meta.get("reference") or (metrics and metric not in metrics):
                continue
            if any(_points(e, RATE, metric) for e in doc.get("entries", [])):
                panels.append((doc, metric))
    if metrics:
        missing = [m for m in metrics if all(m != p[1] for p in panels)]
        if missing:
            raise ConfigError(
                f"no values to plot for metric(s) {', '.join(missing)}; the results have: "
                f"{', '.join(m for d in documents for m in d.get('metrics', {}))}"
            )
    return panels


def plot_results(
    results: dict[str, Any] | Sequence[dict[str, Any]],
    out: str | Path,
    metrics: Sequence[str] | None = None,
    others: Sequence[dict[str, Any]] = (),
    title: str | None = None,
    columns: int = 3,
) -> Path:
    """The figure of one or more results documents: one panel per (document, metric) that varies with the rate.

    ``others``: curves of other files (CompressAI results dicts, e.g. published curves),
    drawn dashed in every panel whose metric they have.
    """
    documents = [results] if isinstance(results, dict) else list(results)
    panels = rate_task_panels(documents, metrics)
    if not panels:
        raise ConfigError("the results hold no rate points to plot")
    plt = pyplot()
    names = list(
        dict.fromkeys([e.get("name", "?") for d in documents for e in d.get("entries", [])] + [e.get("name", "?") for e in others])
    )
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {name: cycle[i % len(cycle)] for i, name in enumerate(names)}
    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.0 * rows), squeeze=False)
    for ax, (doc, metric) in zip(axes.flat, panels):
        meta = doc["metrics"][metric]
        arrow = "↑" if meta.get("higher_is_better", True) else "↓"
        _draw(ax, doc["entries"], RATE, metric, RATE_LABEL, f"{meta.get('label', metric)} {arrow}", colours, dashed=others)
        task = doc.get("task", {})
        ax.set_title(" ".join(str(task[k]) for k in ("name", "model") if task.get(k)), fontsize=9)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, out)


def plot_curves(
    entries: Sequence[dict[str, Any]],
    metric: str,
    out: str | Path,
    ylabel: str | None = None,
    max_rate: float | None = None,
    title: str | None = None,
) -> Path:
    """One panel: ``metric`` against the rate for every curve (``mocodec bd --plot``).

    Curves measured per image (mocodec results) are solid; published curves, means only
    (CompressAI-schema files), are dashed. ``max_rate`` clips the rate axis (published
    curves often run to rates no comparison uses).
    """
    if not any(_points(e, RATE, metric) for e in entries):
        raise ConfigError(f"no curve has values of {metric} to plot")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    measured = [e for e in entries if "per_image" in e]
    published = [e for e in entries if "per_image" not in e]
    label = ylabel or (FIDELITY[metric].label if metric in FIDELITY else metric)
    _draw(ax, measured, RATE, metric, RATE_LABEL, label, dashed=published)
    if max_rate is not None:
        ax.set_xlim(0, max_rate)
        shown = [m for e in entries for r, m in _points(e, RATE, metric) if r <= max_rate]
        if shown:
            pad = 0.03 * (max(shown) - min(shown) or 1.0)
            ax.set_ylim(min(shown) - pad, max(shown) + pad)
    if title or (measured and published):
        ax.set_title(title or "solid: measured by mocodec; dashed: published curves (means only)", fontsize=10)
    return _save(plt, fig, out)


def plot_intervals(
    curves: Sequence[dict[str, Any]],
    out: str | Path,
    metrics: dict[str, str],
    title: str | None = None,
) -> Path:
    """Averaged curves with interval bars (:func:`mocodec.experiment.analysis.analyse`): one panel per metric.

    ``curves``: ``{"name", "kind", "points": [{"bpp": [mean, low, high], <metric>: [...]}]}``;
    ``metrics``: metric -> axis label. Trained curves are solid, baselines (``kind``
    ``baseline``) dashed; a missing interval end draws no bar.
    """
    plt = pyplot()
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.0), squeeze=False)
    for ax, (metric, label) in zip(axes[0], metrics.items()):
        for i, curve in enumerate(curves):
            pts = [p for p in curve["points"] if _number(p["bpp"][0]) and _number(p[metric][0])]
            if not pts:
                continue

            def spread(key: str, pts: list = pts) -> list[list[float]]:  # distances from the mean to the interval ends
                return [
                    [p[key][0] - p[key][1] if _number(p[key][1]) else 0.0 for p in pts],
                    [p[key][2] - p[key][0] if _number(p[key][2]) else 0.0 for p in pts],
                ]

            ax.errorbar(
                [p["bpp"][0] for p in pts],
                [p[metric][0] for p in pts],
                xerr=spread("bpp"),
                yerr=spread(metric),
                marker="o",
                markersize=4,
                capsize=2,
                color=cycle[i % len(cycle)],
                linestyle="--" if curve.get("kind") == "baseline" else "-",
                label=curve["name"],
            )
        ax.set_xlabel(RATE_LABEL)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, out)
