"""Rate–task curves averaged over training seeds, with bootstrap intervals over images *and* seeds.

A *method* (a distortion term trained on a codec) is trained once per seed, and each seed
gives a curve over the same rate points (λ values) on the same images. From an
``eval-task`` results document (:mod:`mocodec.evaluation.sweep`) this module builds, for
each method, the array ``values[metric][seed, point, image]`` and

- the **curve**: at each point, the mean over seeds and images of the rate (file bpp) and of
  every metric;
- its **intervals**: percentile bootstrap (:func:`mocodec.utils.bootstrap.percentile_interval`),
  each resample drawing images with replacement (the *same* images for every method:
  comparisons are paired) and, per method, seeds with replacement, so both the choice of
  images and the training noise show; no interval when fewer than half of the resamples
  give a finite value;
- **BD-rate / BD-metric** of every curve against the anchor's (:func:`mocodec.evaluation.bd.compare`),
  on the full data and on every resample, so each delta has an interval too, and a
  **verdict** on the BD-rate (:func:`verdict`): *not comparable* when ``compare``'s note says
  the curves share too little of their metric range or a curve has too few points, else
  *inside the noise* when the BD-rate interval holds 0, else better or worse than the anchor.

A metric's per-image value is ``task.summarize([record])[metric]``: exact for metrics that
are means over images (classification's agreement, KL, top-5 overlap); for dataset-level
metrics (e.g. mAP) the curve is then the mean of per-image values. Coding metrics every
record holds (``psnr-rgb``) are read from the record itself. Classic baselines (JPEG,
WebP) are methods with a single "seed".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mocodec.errors import ConfigError
from mocodec.evaluation.bd import RateCurve, compare
from mocodec.evaluation.coding import CodecSpec
from mocodec.evaluation.plan import Curve, RatePoint, plan_curves
from mocodec.experiment.recipe import Recipe, TaskEntry
from mocodec.experiment.runs import Run, checkpoint_of
from mocodec.tasks.base import Task
from mocodec.utils.bootstrap import percentile_interval

RATE = "bpp"
# Notes of ``bd.compare`` that leave a BD-rate no comparison of the two curves. A BD-rate
# averages the log-rate gap over the metric range both curves cover: when that is a small
# part of their ranges (below ``bd.LOW_OVERLAP``) or empty, or a curve has fewer points than
# the interpolation needs, the number describes a sliver of the curves at best. (A low
# overlap of the *rate* ranges bounds BD-metric, which is averaged over rates, not BD-rate:
# a curve that reaches every metric at half the bits has rate ranges that overlap little.)
INCOMPARABLE = re.compile(r"metric ranges? overlap|no common metric range|fewer than")


# --------------------------------------------------------------------------- the curves of an experiment


def curve_groups(recipe: Recipe) -> dict[str, str]:
    """Each trained curve's label in the results (one per codec, term and seed) -> its method (codec and term)."""
    return {
        f"{recipe.method(codec, term)} seed{seed}": recipe.method(codec, term)
        for codec in recipe.codecs
        for term in recipe.terms
        for seed in recipe.seeds
    }


def plan_task_curves(recipe: Recipe, out: Path) -> tuple[list[Curve], dict[str, str]]:
    """The sweep's curves: one per (codec, term, seed) with its λ checkpoints as points, then the baselines.

    Returns ``(curves, groups)`` where ``groups`` maps each trained curve's label to its method name.
    """
    curves = []
    for codec in recipe.codecs:
        for term in recipe.terms:
            for seed in recipe.seeds:
                label = f"{recipe.method(codec, term)} seed{seed}"
                runs = [Run(codec, term, lmbda, seed) for lmbda in term.lmbdas]
                points = tuple(
                    RatePoint(label, r.point, CodecSpec.parse(f"ckpt:{checkpoint_of(out / 'runs' / r.name)}"), None) for r in runs
                )
                curves.append(Curve(label, f"{codec.codec} trained on {term.label}", points))
    if recipe.baselines:
        curves += plan_curves(list(recipe.baselines), [f"{name}={','.join(map(str, q))}" for name, q in recipe.baselines.items()])
    return curves, curve_groups(recipe)


def analyse_task(recipe: Recipe, task_entry: TaskEntry, task: type[Task] | Task, doc: Mapping[str, Any]) -> dict[str, Any]:
    """Curves with intervals and BD rows of one task's results (:func:`analyse`), with the judge's facts."""
    unknown = [m for m in task_entry.metrics if m not in doc["metrics"] or doc["metrics"][m]["reference"]]
    if unknown:
        rate_metrics = [m for m, meta in doc["metrics"].items() if not meta["reference"]]
        raise ConfigError(
            f"tasks.{task_entry.label}.metrics: '{unknown[0]}' is not a rate-dependent metric of "
            f"{task_entry.task}; use some of {', '.join(rate_metrics)}"
        )
    methods, ids = method_data(doc, task, curve_groups(recipe), task_entry.metrics)
    directions = {m: doc["metrics"][m]["higher_is_better"] for m in task_entry.metrics}
    anchor = recipe.method(recipe.codecs[0], next(t for t in recipe.terms if t.label == recipe.anchor))
    analysis = analyse(methods, directions, anchor, recipe.bootstrap, recipe.interval)
    # Measured on the originals: the same at every point, so any point's records give them.
    first = doc["entries"][0]
    originals = [r for r in first["per_image"] if r["point"] == next(iter(first["points"])) and r["id"] in set(ids)]
    reference = {m: v for m, v in task.summarize(originals).items() if doc["metrics"].get(m, {}).get("reference") and v is not None}
    return {
        "task": task_entry.label,
        "identity": doc["task"],
        "dataset": doc["dataset"],
        "num_images": len(ids),
        "anchor": anchor,
        "reference": reference,
        "metrics": {m: {"label": doc["metrics"][m]["label"], "higher_is_better": directions[m]} for m in task_entry.metrics},
        "results": f"results/{task_entry.label}.json",
        **analysis,
    }


# --------------------------------------------------------------------------- per-image values of every method


@dataclass
class MethodData:
    """One method's per-image values: ``values[metric]`` is seeds x points x images."""

    name: str
    kind: str  # "trained" or "baseline"
    points: list[str]
    values: dict[str, np.ndarray]

    @property
    def seeds(self) -> int:
        return next(iter(self.values.values())).shape[0]


def method_data(
    doc: Mapping[str, Any], task: type[Task] | Task, groups: Mapping[str, str], metrics: Sequence[str]
) -> tuple[list[MethodData], list[str]]:
    """Every method of a results document (entries grouped by ``groups``: entry name -> method), and the image ids.

    Entries not in ``groups`` are baselines, one method each. Only images that every entry
    has at every point take part, so comparisons stay paired.
    """
    members: dict[str, list[dict[str, Any]]] = {}
    for entry in doc["entries"]:
        members.setdefault(groups.get(entry["name"], entry["name"]), []).append(entry)
    ids = None
    for entry in doc["entries"]:
        for point in entry["points"]:
            have = {r["id"] for r in entry["per_image"] if r["point"] == point}
            ids = have if ids is None else ids & have
    ids = sorted(ids or ())
    column = {image: i for i, image in enumerate(ids)}
    methods = []
    for name, entries in members.items():
        points = list(entries[0]["points"])
        values = {m: np.full((len(entries), len(points), len(ids)), np.nan) for m in (RATE, *metrics)}
        for s, entry in enumerate(entries):
            row = {p: i for i, p in enumerate(points)}
            for record in entry["per_image"]:
                if record["id"] not in column or record["point"] not in row:
                    continue
                at = (s, row[record["point"]], column[record["id"]])
                values[RATE][at] = record[RATE]
                summary = task.summarize([record])
                for m in metrics:  # a task metric, or a coding metric every record holds (psnr-rgb)
                    values[m][at] = _float(summary[m] if m in summary else record.get(m))
        methods.append(MethodData(name, "trained" if name in groups.values() else "baseline", points, values))
    return methods, ids


def _float(value: Any) -> float:
    return float(value) if value is not None else math.nan


# --------------------------------------------------------------------------- curves, intervals, BD rows


def _means(method: MethodData, seeds: np.ndarray | None = None, images: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Rate and every metric per point, averaged over the chosen seeds and images (all by default)."""
    out = {}
    for key, v in method.values.items():
        v = v if seeds is None else v[seeds]
        out[key] = (v if images is None else v[:, :, images]).mean(axis=(0, 2))
    return out


def _bd(anchor: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray], metric: str, higher_is_better: bool, names=("anchor", "test")):
    curves = [RateCurve(name, tuple(c[RATE]), tuple(c[metric])) for name, c in zip(names, (anchor, test))]
    return compare(*curves, higher_is_better=higher_is_better)


def _interval(samples: Sequence[float], coverage: float) -> list[float]:
    # Most resamples could not be compared (e.g. no common range): no honest interval.
    return list(percentile_interval(samples, coverage, min_finite=0.5))


def comparable(note: str) -> bool:
    """Whether the BD-rate of a row whose ``bd.compare`` note is ``note`` compares the two curves.

    Not when the note reports low or no overlap of the curves' metric ranges, or fewer
    points than the interpolation needs (see :data:`INCOMPARABLE`).
    """
    return not INCOMPARABLE.search(note or "")


def verdict(low: float, high: float, anchor: str, lower_is_gain: bool = True, note: str = "") -> str:
    """Plain words for an interval of a delta against ``anchor`` (BD-rate: lower is a gain), given ``compare``'s note."""
    if not comparable(note):
        return "not comparable"
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not computable"
    if low <= 0 <= high:
        return "inside the noise"
    gain = high < 0 if lower_is_gain else low > 0
    return f"better than {anchor}" if gain else f"worse than {anchor}"


def analyse(
    methods: Sequence[MethodData], metrics: Mapping[str, bool], anchor: str, resamples: int = 1000, coverage: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Curves with intervals and BD rows against ``anchor`` (see the module docstring).

    ``metrics``: metric -> higher_is_better. Returns ``{"curves": [...], "bd": [...]}`` where a
    point is ``{"point", "bpp": [mean, low, high], <metric>: [mean, low, high]}`` and a BD row
    is ``{"curve", "metric", "bd_rate": [est, low, high], "bd_metric": [...], "points", "note", "verdict"}``.
    """
    if anchor not in [m.name for m in methods]:
        raise ConfigError(f"anchor '{anchor}' is not among the curves: {', '.join(m.name for m in methods)}")
    num_images = next(iter(methods[0].values.values())).shape[2]
    rng = np.random.default_rng(seed)
    draws = []  # per resample: images, and per method its seeds
    for _ in range(resamples):
        images = rng.integers(num_images, size=num_images)
        draws.append((images, {m.name: rng.integers(m.seeds, size=m.seeds) for m in methods}))
    full = {m.name: _means(m) for m in methods}
    boot = {m.name: [_means(m, seeds[m.name], images) for images, seeds in draws] for m in methods}
    curves = []
    for m in methods:
        points = []
        for j, point in enumerate(m.points):
            row: dict[str, Any] = {"point": point}
            for key in (RATE, *metrics):
                row[key] = [float(full[m.name][key][j]), *_interval([b[key][j] for b in boot[m.name]], coverage)]
            points.append(row)
        curves.append({"name": m.name, "kind": m.kind, "seeds": m.seeds, "points": sorted(points, key=lambda p: p[RATE][0])})
    rows = []
    for metric, higher in metrics.items():
        for m in methods:
            if m.name == anchor:
                continue
            est = _bd(full[anchor], full[m.name], metric, higher, (anchor, m.name))
            samples = [_bd(a, t, metric, higher) for a, t in zip(boot[anchor], boot[m.name])]
            bd_rate = [est.bd_rate, *_interval([b.bd_rate for b in samples], coverage)]
            bd_metric = [est.bd_metric, *_interval([b.bd_metric for b in samples], coverage)]
            low, high = bd_rate[1:] if math.isfinite(est.bd_rate) else (math.nan, math.nan)
            rows.append(
                {
                    "curve": m.name,
                    "metric": metric,
                    "higher_is_better": higher,
                    "points": est.points,
                    "note": est.note,
                    "bd_rate": bd_rate,
                    "bd_metric": bd_metric,
                    "verdict": verdict(low, high, anchor, note=est.note),
                }
            )
    return {"curves": curves, "bd": rows}


__all__ = ["MethodData", "method_data", "analyse", "verdict", "comparable", "curve_groups", "plan_task_curves", "analyse_task"]
