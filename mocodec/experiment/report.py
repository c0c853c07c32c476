"""What an experiment leaves to read: a figure and BD tables per task, ``report.md``, and a W&B evaluation run.

- ``figures/<task>.png``: one panel per metric, one curve per term (mean over seeds, bars:
  intervals), baselines dashed (:func:`mocodec.evaluation.plots.plot_intervals`);
- ``tables/bd_<task>.md`` and ``.csv``: the BD rows against the anchor (:data:`BD_COLUMNS`),
  written by the one table writer (:mod:`mocodec.utils.tables`);
- ``report.md``: the setup, the loss shares, the judge's facts, the figure, the BD table and
  one plain sentence per row, which says when a difference is inside the noise and when a
  BD-rate compares too little of the curves to mean anything (:func:`mocodec.experiment.analysis.verdict`);
- ``report.html``: the same on one self-contained page (:mod:`mocodec.report`): per task the
  curves with their interval bars (interactive), the BD table with its verdicts, and the decoded
  crops the sweep kept, side by side at matched rates (:func:`write_page`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mocodec.evaluation.bd import LOW_OVERLAP
from mocodec.evaluation.crops import crops_folder
from mocodec.evaluation.plots import plot_intervals
from mocodec.evaluation.results import read_document
from mocodec.experiment.analysis import curve_groups
from mocodec.experiment.recipe import Recipe, TermEntry, recipe_data
from mocodec.experiment.runs import Run, compared_runs
from mocodec.files import atomic_write_text
from mocodec.report import content
from mocodec.report.figures import Panel, Point, Series, plotly_js, rate_figure
from mocodec.report.page import BDTable, Section, render_page, write_page
from mocodec.utils.tables import to_csv, to_markdown

BD_COLUMNS = (
    "task",
    "curve",
    "metric",
    "points",
    "bd_rate",
    "bd_rate_low",
    "bd_rate_high",
    "bd_metric",
    "bd_metric_low",
    "bd_metric_high",
    "verdict",
    "note",
)


def describe_dataset(dataset: dict) -> str:
    """A results file's dataset in words: its name, options and digest (an older file's folder as it recorded it)."""
    if "root" in dataset:  # written before datasets were identified by digest
        return dataset["root"] or "tiles of the held-out embedded photographs"
    if "parts" in dataset:  # several folders judged as one
        folders = " + ".join(f"{_folder_words(part)} ({part['num_samples']} images)" for part in dataset["parts"])
        return f"{folders}, digest {dataset['digest']}"
    return f"{_folder_words(dataset)}, digest {dataset['digest']}"


def _folder_words(folder: Mapping[str, Any]) -> str:
    """A folder's name and its reader's options in words."""
    name = "tiles of the held-out embedded photographs" if folder["name"] == "default" else f"`{folder['name']}`"
    options = ", ".join(f"{k} {v}" for k, v in folder.get("options", {}).items())
    return f"{name}{', ' + options if options else ''}"


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}f}" if math.isfinite(value) else "n/a"


def _with_interval(values: Sequence[float], digits: int = 2) -> str:
    est, low, high = values
    return f"{_fmt(est, digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


def bd_rows(analysis: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The BD table of one task as flat rows (:data:`BD_COLUMNS`), the CSV's content."""
    return [
        {
            "task": analysis["task"],
            "curve": r["curve"],
            "metric": r["metric"],
            "points": r["points"],
            "bd_rate": r["bd_rate"][0],
            "bd_rate_low": r["bd_rate"][1],
            "bd_rate_high": r["bd_rate"][2],
            "bd_metric": r["bd_metric"][0],
            "bd_metric_low": r["bd_metric"][1],
            "bd_metric_high": r["bd_metric"][2],
            "verdict": r["verdict"],
            "note": r["note"],
        }
        for r in analysis["bd"]
    ]


def bd_markdown(analysis: Mapping[str, Any], coverage: float) -> str:
    """The BD table of one task in Markdown: estimates with their intervals, verdict and note."""
    rate, metric = f"BD-rate [%] ({coverage:.0%} interval)", f"BD-metric ({coverage:.0%} interval)"
    rows = [
        {
            "curve": r["curve"],
            "metric": r["metric"],
            "points": r["points"],
            rate: _with_interval(r["bd_rate"]),
            metric: _with_interval(r["bd_metric"], 4),
            "verdict": r["verdict"],
            "note": r["note"],
        }
        for r in analysis["bd"]
    ]
    return to_markdown(rows, ["curve", "metric", "points", rate, metric, "verdict", "note"])


def write_artefacts(recipe: Recipe, out: Path, summary: dict[str, Any]) -> None:
    """The figure and BD tables of every task, and ``report.md``; their paths go into ``summary["files"]``."""
    files: dict[str, dict[str, str]] = {}
    for analysis in summary["tasks"]:
        label = analysis["task"]
        figure = Path("figures") / f"{label}.png"
        labels = {m: f"{meta['label']} {'↑' if meta['higher_is_better'] else '↓'}" for m, meta in analysis["metrics"].items()}
        title = f"{recipe.name}: {analysis['identity'].get('model', analysis['identity']['name'])} on {analysis['num_images']} images"
        plot_intervals(analysis["curves"], out / figure, labels, title)
        table_md, table_csv = Path("tables") / f"bd_{label}.md", Path("tables") / f"bd_{label}.csv"
        atomic_write_text(out / table_md, bd_markdown(analysis, recipe.interval))
        atomic_write_text(out / table_csv, to_csv(bd_rows(analysis), BD_COLUMNS))
        files[label] = {"figure": str(figure), "bd_markdown": str(table_md), "bd_csv": str(table_csv), "results": analysis["results"]}
    summary["files"] = files
    atomic_write_text(out / "report.md", report_markdown(recipe, summary))
    write_experiment_page(recipe, out, summary)


def _mean_shares(recipe: Recipe, term: TermEntry, runs: Mapping[str, Any]) -> str:
    shares = [runs[r.name]["shares"] for r in compared_runs(recipe) if r.term == term and runs.get(r.name, {}).get("shares")]
    if not shares:
        return "not logged"
    keys = shares[0].keys()
    return ", ".join(f"{k} {sum(s.get(k, 0.0) for s in shares) / len(shares):.0%}" for k in keys)


def plain_words(row: Mapping[str, Any], anchor: str) -> str:
    """One BD row's verdict as a sentence: what the experiment can and cannot tell."""
    if row["verdict"] == "inside the noise":
        return f"inside the noise: the interval holds 0, so this experiment cannot tell {row['curve']} from {anchor}"
    if row["verdict"] == "not comparable":
        reason = (
            "a curve has too few points for the interpolation"
            if "fewer than" in row["note"]
            else f"the two curves share too little of their {row['metric']} range"
        )
        return (
            f"not comparable: {reason} ({row['note']}), so this BD-rate does not compare {row['curve']} with {anchor}, "
            "whatever its interval; read the figure instead"
        )
    return row["verdict"] + (f" ({row['note']})" if row["note"] else "")


def _rewritten(rewrite: Mapping[str, Any]) -> str:
    by = f" by `{rewrite['command']}`" if rewrite.get("command") else ""
    return (
        f"- Report rewritten from the recorded results{by} (code version `{rewrite['code_version']}`): "
        "the current analysis of the same per-image records; nothing was trained or judged again."
    )


def report_markdown(recipe: Recipe, summary: Mapping[str, Any]) -> str:
    """The experiment's report: setup, judge, figure, BD tables and plain conclusions."""
    wall = summary["wall_time"]
    data = recipe.training.get("data", {})
    rewritten = summary.get("report_rewritten")
    lines = [
        f"# Experiment `{recipe.name}`",
        "",
        recipe.description.strip(),
        "",
        *([f"- Command: `{summary['command']}`"] if summary.get("command") else []),
        f"- Code version: `{summary['code_version']}`; wall time {wall['total'] / 60:.1f} min "
        f"(training {wall['training'] / 60:.1f} min, evaluation {wall['evaluation'] / 60:.1f} min; summed over invocations).",
        *([_rewritten(rewritten)] if rewritten else []),
        f"- Every run: {recipe.steps} steps{'' if any(t.start_from or t.steps for t in recipe.terms) else ' (compared at equal steps)'}, "
        f"seeds {', '.join(map(str, recipe.seeds))}, "
        f"batch {data.get('batch_size', 'default')}, crops {data.get('crop_size', 'default')} px, "
        f"training images: {data.get('train') or 'the embedded training photographs'}.",
        *[
            f"- Every run of `{c.label}` is fine-tuned from a base trained by the recipe for {c.pretrain.steps} steps on "
            f"`{json.dumps(c.pretrain.distortions)}` at λ {c.pretrain.lmbda:g}, one base per seed "
            f"(`runs/{Run.pretraining_of(c, recipe.seeds[0]).name}`, ...), with fresh optimisers."
            for c in recipe.codecs
            if c.pretrain is not None
        ],
        *[
            f"- Every run of term `{t.label}` is fine-tuned from term `{t.start_from}`'s finished run at the same λ and seed, "
            f"for {t.steps or recipe.steps} steps of its own, with fresh optimisers: it has trained that many steps more "
            f"than the run it starts from."
            for t in recipe.terms
            if t.start_from is not None
        ],
        f"- Intervals: {recipe.interval:.0%} percentile bootstrap ({recipe.bootstrap} resamples) over images and seeds; "
        "a difference whose BD-rate interval holds 0 is **inside the noise**. A BD-rate is averaged over the metric range "
        f"both curves reach: where that is less than {LOW_OVERLAP:.0%} of their joint range, or a curve has too few points, "
        "the row is **not comparable**, whatever its interval.",
        "",
        "## Codecs and distortion terms",
        "",
        "| term | codec | distortions | λ | balancing | share of the loss at the end of training (mean over runs) |",
        "|---|---|---|---|---|---|",
    ]
    for codec in recipe.codecs:
        for term in recipe.terms:
            qualities = ",".join(map(str, codec.qualities)) if codec.qualities is not None else codec.quality
            start = f", from {codec.init_weights} weights" if codec.init_weights else ""
            arch = f"{codec.codec} q{qualities} {json.dumps(codec.kwargs) if codec.kwargs else ''}".strip() + start
            balance = f"after {term.balance_warmup} steps" if term.balance_warmup is not None else "off"
            lines.append(
                f"| {recipe.method(codec, term)} | {arch} | `{json.dumps(term.distortions)}` | "
                f"{', '.join(f'{v:g}' for v in term.lmbdas)} | {balance} | {_mean_shares(recipe, term, summary['runs'])} |"
            )
    lines += [
        "",
        "Balancing (`balance_warmup`): after the warm-up every term is rescaled to the running mean of the first "
        "(reference) term, so a weight states the term's share of the distortion at the working point reached in training, "
        "not at initialisation. Shares come from the runs' `train/share_*` logs (last 20 % of the logged steps).",
    ]
    for analysis in summary["tasks"]:
        files = summary["files"][analysis["task"]]
        primary = next(iter(analysis["metrics"]))
        ident = analysis["identity"]
        lines += [
            "",
            f"## Task `{analysis['task']}`: {ident['name']} judged by {ident.get('model', '?')} (weights: {ident.get('weights', '?')})",
            "",
        ]
        facts = [f"{analysis['num_images']} images ({describe_dataset(analysis['dataset'])})"]
        facts += [f"{m} on the originals {v:.3f}" for m, v in analysis["reference"].items()]
        lines += [
            "- " + "; ".join(facts) + ".",
            f"- Primary measure: **{analysis['metrics'][primary]['label']}**; "
            f"also {', '.join(meta['label'] for m, meta in analysis['metrics'].items() if m != primary) or 'nothing else'}.",
            f"- Files: [figure]({files['figure']}), [BD table]({files['bd_markdown']}) ([CSV]({files['bd_csv']})), "
            f"[per-image results]({files['results']}).",
            "",
            f"![{analysis['task']}]({files['figure']})",
            "",
            f"BD against `{analysis['anchor']}` (BD-rate < 0: fewer bits at equal metric):",
            "",
            bd_markdown(analysis, recipe.interval),
            "### In plain words",
            "",
        ]
        for row in analysis["bd"]:
            lines.append(
                f"- {row['curve']} on {row['metric']}: BD-rate {_with_interval(row['bd_rate'])} %: {plain_words(row, analysis['anchor'])}."
            )
    return "\n".join(lines) + "\n"


def _interval(values: Sequence[float]) -> tuple[float, float] | None:
    return (values[1], values[2]) if len(values) == 3 else None


def experiment_section(recipe: Recipe, out: Path, analysis: Mapping[str, Any], index: int, colours: Mapping[str, str]) -> Section:
    """One task of the experiment on the page: curves with interval bars, BD rows with verdicts, the kept crops."""
    title = f"{analysis['identity'].get('model', analysis['identity']['name'])} on {analysis['num_images']} images"
    panels = [
        Panel(
            metric,
            f"{meta['label']} {'↑' if meta['higher_is_better'] else '↓'}",
            f"{meta['label']} — {title}",
            [
                Series(
                    curve["name"],
                    [Point(p["bpp"][0], p[metric][0], str(p["point"]), _interval(p["bpp"]), _interval(p[metric])) for p in curve["points"]],
                    dashed=curve.get("kind") == "baseline",
                )
                for curve in analysis["curves"]
            ],
        )
        for metric, meta in analysis["metrics"].items()
    ]
    anchor = analysis["anchor"]
    rows = [{**row, "label": analysis["metrics"][row["metric"]]["label"], "words": plain_words(row, anchor)} for row in analysis["bd"]]
    how = f"{recipe.interval:.0%} percentile bootstrap over images and seeds ({recipe.bootstrap} resamples)"
    results = out / analysis["results"]
    doc = read_document(results)
    first_seed = f"{anchor} seed{recipe.seeds[0]}"
    comparison = content.comparison(doc, results, anchor=first_seed)
    note = (
        ""
        if comparison is not None
        else f"no decoded crops beside {analysis['results']} ({crops_folder(results).name}/): judged before sweeps kept them"
    )
    ident = analysis["identity"]
    return Section(
        key=f"t{index}-" + "".join(ch if ch.isalnum() else "-" for ch in analysis["task"]).lower(),
        heading=f"task {analysis['task']}: {ident['name']} judged by {ident.get('model', '?')}",
        facts=[
            f"{analysis['num_images']} images ({describe_dataset(analysis['dataset'])})",
            *[f"{m} on the originals {v:.3f}" for m, v in analysis["reference"].items()],
            f"curves: means over seeds ({', '.join(map(str, recipe.seeds))}) and images, bars: {how}",
            f"per-image results: {analysis['results']}",
        ],
        figure=rate_figure(panels, colours),
        numbers={c["name"]: c for c in analysis["curves"]},
        bd=BDTable(anchor, rows, recipe.interval, how),
        comparison=comparison,
        comparison_note=note,
    )


def write_experiment_page(recipe: Recipe, out: Path, summary: Mapping[str, Any]) -> Path:
    """``report.html``: every task of the experiment on one self-contained page (see the module docstring)."""
    methods = [c["name"] for analysis in summary["tasks"] for c in analysis["curves"]]
    colours = content.curve_colours(methods)
    colours.update({entry: colours[method] for entry, method in curve_groups(recipe).items() if method in colours})  # a seed's curve
    sections = [experiment_section(recipe, out, analysis, i, colours) for i, analysis in enumerate(summary["tasks"])]
    notes = [recipe.description.strip(), f"Code version {summary['code_version']}; the same analysis as report.md."]
    return write_page(
        out / "report.html", render_page(f"Experiment {recipe.name}", sections, colours, plotly_js(), [n for n in notes if n])
    )


def log_to_wandb(recipe: Recipe, out: Path, summary: Mapping[str, Any]) -> None:
    """An ``evaluation`` run in the experiment's W&B group with the figures, BD tables and wall time."""
    import wandb  # optional and slow to import: only when the recipe logs to W&B

    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", "mocodec"),
        group=recipe.name,
        job_type="evaluation",
        name=f"{recipe.name}-evaluation",
        dir=str(out),
        config=recipe_data(recipe),
        mode=os.environ.get("WANDB_MODE", "offline"),
        reinit="finish_previous",
    )
    try:
        for analysis in summary["tasks"]:
            label = analysis["task"]
            rows = bd_rows(analysis)
            run.log(
                {
                    f"{label}/figure": wandb.Image(str(out / summary["files"][label]["figure"])),
                    f"{label}/bd": wandb.Table(columns=list(BD_COLUMNS), data=[[r[c] for c in BD_COLUMNS] for r in rows]),
                }
            )
        run.summary.update({"wall_time_min": summary["wall_time"]["total"] / 60})
    finally:
        run.finish()


__all__ = [
    "BD_COLUMNS",
    "bd_rows",
    "bd_markdown",
    "write_artefacts",
    "plain_words",
    "report_markdown",
    "experiment_section",
    "write_experiment_page",
    "log_to_wandb",
]
