"""Writing IQA results: per dataset a CSV and a Markdown table, a per-type CSV, all paired tests, a bar plot.

Layout of ``OUT/``::

    DATASET.csv               one row per metric (every figure, intervals, p-values vs the best metric)
    DATASET.md                the same as a Markdown table, with the notes on how it was computed
    DATASET_per_type.csv      the breakdown by distortion type (pair datasets: by pair of types)
    DATASET_comparisons.csv   every pair of metrics: difference, bootstrap and Wilcoxon p-values
    DATASET.png               bar plot of the headline figure(s) with their 95% intervals
    report.md                 all tables, one section per dataset
    results.json              everything above as data: written last, so its presence means the run finished

Each file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mocodec.errors import OutputExistsError
from mocodec.evaluation.plots import pyplot
from mocodec.evaluation.results import write_results
from mocodec.files import atomic_write_bytes, atomic_write_text
from mocodec.iqa.evaluate import DatasetReport

COMPLETION_FILE = "results.json"


def check_output_folder(out: str | Path, force: bool = False) -> Path:
    """Refuse a folder holding a finished run unless ``force``; an unfinished one is overwritten."""
    out = Path(out)
    if (out / COMPLETION_FILE).exists() and not force:
        raise OutputExistsError(f"{out} already holds IQA results; pass --force to overwrite them")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} is a file; give a folder for the results")
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


def to_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _interval_bounds(report: DatasetReport, column: str) -> tuple[str, str]:
    if report.kind == "2afc":
        label_set = column[column.index("[") :]
        return f"low{label_set}", f"high{label_set}"
    return f"{column}_low", f"{column}_high"


def markdown_section(report: DatasetReport) -> str:
    """The dataset's table with each headline figure and its interval in one cell."""
    rows = []
    for row in report.rows:
        shown = {"metric": row["metric"]}
        for column in report.headline:
            low, high = _interval_bounds(report, column)
            shown[column] = f"{_cell(row[column])} [{_cell(row[low])}, {_cell(row[high])}]"
        for key, value in row.items():
            if key not in shown and not key.startswith(("low[", "high[")) and not key.endswith(("_low", "_high")):
                shown[key] = value
        rows.append(shown)
    notes = "".join(f"\n{note}.\n" for note in report.notes)
    return f"## {report.dataset}\n\n{to_markdown(rows)}{notes}"


def bar_plot(report: DatasetReport, out: Path) -> Path:
    """One group of bars per metric, one bar per headline figure, with 95% interval whiskers."""
    plt = pyplot()
    metrics = [row["metric"] for row in report.rows]
    width = 0.8 / len(report.headline)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(metrics) + 1.5), 3.6))
    x = np.arange(len(metrics))
    for k, column in enumerate(report.headline):
        low, high = _interval_bounds(report, column)
        values = np.array([row[column] for row in report.rows], dtype=float)
        errors = np.array([[v - row[low], row[high] - v] for v, row in zip(values, report.rows)], dtype=float).T
        ax.bar(x + (k - (len(report.headline) - 1) / 2) * width, values, width, yerr=np.nan_to_num(errors), capsize=3, label=column)
    ax.set_xticks(x, metrics, rotation=20, ha="right")
    ax.set_ylabel("2AFC score" if report.kind == "2afc" else "SRCC")
    if report.kind == "2afc":
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_title(report.dataset)
    ax.grid(True, axis="y", alpha=0.3)
    if len(report.headline) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)
    plt.close(fig)
    atomic_write_bytes(out, buffer.getvalue())
    return out


def write_reports(reports: Sequence[DatasetReport], out: str | Path, *, extra: dict[str, Any] | None = None) -> list[Path]:
    """Write every file of the layout above; ``results.json`` last. Returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written, sections = [], []
    for report in reports:
        name = report.dataset
        atomic_write_text(out / f"{name}.csv", to_csv(report.rows))
        atomic_write_text(out / f"{name}_per_type.csv", to_csv(report.per_type))
        atomic_write_text(out / f"{name}_comparisons.csv", to_csv(report.comparisons))
        section = markdown_section(report)
        atomic_write_text(out / f"{name}.md", section)
        sections.append(section)
        written += [out / f"{name}.{ext}" for ext in ("csv", "md")] + [out / f"{name}_per_type.csv", out / f"{name}_comparisons.csv"]
        written.append(bar_plot(report, out / f"{name}.png"))
    atomic_write_text(out / "report.md", "# IQA results\n\n" + "\n".join(sections))
    payload = {**(extra or {}), "datasets": [report.__dict__ for report in reports]}
    # numpy scalars -> Python numbers; non-finite values are written as strings, as results files do
    write_results(out / COMPLETION_FILE, json.loads(json.dumps(payload, default=_json_default)))
    return [*written, out / "report.md", out / COMPLETION_FILE]


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
