"""A report page from sweep results files (``mocodec report``, ``make demo``): one section per file.

Each section has the file's curves (:func:`mocodec.report.content.panels`), its BD table with
intervals and verdicts, and the comparison of the decoded crops its sweep kept. The BD
table is the experiment's analysis (:func:`mocodec.experiment.analysis.analyse`) of a
sweep: every curve is a method with one "seed", the intervals come from a percentile
bootstrap over the images (the same images for every curve: paired), and the verdict says
when an interval holds 0 or the curves share too little of their range to compare.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mocodec.errors import ConfigError
from mocodec.evaluation.crops import crops_folder
from mocodec.evaluation.results import read_document
from mocodec.evaluation.sweep import summarizer
from mocodec.experiment.analysis import analyse, method_data
from mocodec.experiment.report import plain_words
from mocodec.report import content
from mocodec.report.figures import plotly_js, rate_figure
from mocodec.report.page import BDTable, Section, render_page, write_page
from mocodec.utils.provenance import code_version

DEFAULT_BOOTSTRAP = 1000
NOT_BD = ("bpp-estimated",)  # a rate, not a quality: no BD against the rate


def read_results(path: str | Path) -> dict[str, Any]:
    """A results file with per-image records (any version), or a one-line error naming what a page needs."""
    try:
        return read_document(path)
    except ConfigError as exc:
        if "does not exist" in str(exc):
            raise
        raise ConfigError(
            f"{path} is not a mocodec results file with per-image records; a page is made from the files eval-rd, eval-task "
            "and experiments write"
        ) from None


def bd_section(
    doc: Mapping[str, Any],
    metrics: Sequence[str],
    anchor: str | None = None,
    resamples: int = DEFAULT_BOOTSTRAP,
    coverage: float = 0.95,
) -> tuple[BDTable | None, str]:
    """The BD table of one results document on ``metrics`` against ``anchor`` (default: its first curve), or why there is none."""
    names = [e["name"] for e in doc["entries"]]
    if len(names) < 2:
        return None, "one curve only: nothing to compare against"
    if not metrics:
        return None, "no metric varies with the rate"
    anchor = anchor if anchor in names else names[0]
    judge = SimpleNamespace(summarize=summarizer(doc.get("task", {})))  # per-record values, without building any model
    methods, ids = method_data(doc, judge, {}, metrics)
    if not ids:
        return None, "no image has records at every rate point of every curve: the curves cannot be compared image by image"
    directions = {m: bool(doc["metrics"][m].get("higher_is_better", True)) for m in metrics}
    analysis = analyse(methods, directions, anchor, resamples, coverage)
    rows = [
        {**row, "label": doc["metrics"][row["metric"]].get("label", row["metric"]), "words": plain_words(row, anchor)}
        for row in analysis["bd"]
    ]
    how = f"{coverage:.0%} percentile bootstrap over the {len(ids)} images ({resamples} resamples), paired across curves"
    return BDTable(anchor, rows, coverage, how), ""


def bd_metrics_of(doc: Mapping[str, Any], wanted: Sequence[str] | None) -> list[str]:
    """The metrics a section's BD table compares: ``wanted`` (those the file has), else every metric its figure shows."""
    shown = [p.metric for p in content.panels(doc) if p.metric not in NOT_BD]
    return [m for m in wanted if m in shown] if wanted else shown


def _key(i: int, path: Path) -> str:
    return f"s{i}-" + (re.sub(r"[^A-Za-z0-9]+", "-", path.stem).strip("-").lower()[:40] or "results")


def build_sections(
    paths: Sequence[str | Path],
    *,
    anchor: str | None = None,
    images: Sequence[str] | None = None,
    num_images: int = content.DEFAULT_IMAGES,
    bd_metrics: Sequence[str] | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    coverage: float = 0.95,
    with_images: bool = True,
) -> tuple[list[Section], dict[str, str]]:
    """The sections of a page of ``paths`` (one per results file) and the curves' colours."""
    if not paths:
        raise ConfigError("no results files given; pass the files eval-rd / eval-task wrote")
    if bootstrap < 1:
        raise ConfigError(f"--bootstrap must be >= 1, got {bootstrap}")
    if not 0 < coverage < 1:
        raise ConfigError(f"--interval must be between 0 and 1 (e.g. 0.95), got {coverage}")
    docs = [(Path(p), read_results(p)) for p in paths]
    colours = content.curve_colours([e["name"] for _, doc in docs for e in doc["entries"]])
    if bd_metrics:
        known = {p.metric for _, doc in docs for p in content.panels(doc)}
        unknown = [m for m in bd_metrics if m not in known]
        if unknown:
            raise ConfigError(f"--bd-metrics: no file has rate-dependent values of '{unknown[0]}'; they have {', '.join(sorted(known))}")
    if images:
        held = {r["id"] for _, doc in docs for e in doc["entries"] for r in e["per_image"]}
        stray = [i for i in images if i not in held]
        if stray:
            raise ConfigError(f"--images: no results file has image '{stray[0]}'; name images by the ids the results files give them")
    sections = []
    for i, (path, doc) in enumerate(docs):
        bd, bd_note = bd_section(doc, bd_metrics_of(doc, bd_metrics), anchor, bootstrap, coverage)
        comparison, note = None, ""
        if with_images:
            comparison = content.comparison(doc, path, images, num_images, anchor)
            if comparison is None:
                note = f"no decoded crops beside {path.name} ({crops_folder(path).name}/): rerun its sweep with --keep-crops N into a new --out"
        task = doc.get("task", {})
        judge = "rate–distortion" if task.get("name") == "fidelity" else f"rate–task: {task.get('name')} ({task.get('model', '?')})"
        sections.append(
            Section(
                key=_key(i, path),
                heading=f"{path.name} — {judge}",
                facts=content.facts(doc, path),
                figure=rate_figure(content.panels(doc), colours),
                numbers=content.curve_numbers(doc),
                bd=bd,
                bd_note=bd_note,
                comparison=comparison,
                comparison_note=note,
            )
        )
    if with_images and all(s.comparison is None for s in sections):
        names = ", ".join(f"{crops_folder(p).name}/" for p, _ in docs)
        raise ConfigError(
            f"no decoded crops beside the results ({names}): rerun the sweep with --keep-crops N into a new --out, "
            "or pass --no-images for a page of curves and tables only"
        )
    return sections, colours


def write_report(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    title: str | None = None,
    **options: Any,
) -> Path:
    """Write the page of ``paths`` to ``out`` (options: those of :func:`build_sections`); its path."""
    sections, colours = build_sections(paths, **options)
    title = title or f"mocodec results: {', '.join(Path(p).name for p in paths)}"
    notes = [f"Made by mocodec (code version {code_version()}) from {', '.join(Path(p).name for p in paths)}."]
    return write_page(out, render_page(title, sections, colours, plotly_js(), notes))


__all__ = ["DEFAULT_BOOTSTRAP", "read_results", "bd_section", "bd_metrics_of", "build_sections", "write_report"]
