"""Any registered metric on IQA datasets: 2AFC on pair datasets, correlations on scored ones, paired tests.

A metric is a distortion of :mod:`mocodec.losses` (``create_distortion(name, **kwargs)``),
scored per image with ``.score(x_hat, x)`` in the direction its ``higher_is_better`` states;
``NAME:CONFIG.yaml`` gives it keyword arguments from a YAML/JSON file (e.g. ML-CLIPSim
with fitted layer weights from ``mocodec iqa ablate``). Each dataset gives one
:class:`DatasetReport`:

- pair datasets (PCMP, MPD pairs): 2AFC with its bootstrap 95% interval per label set
  (PCMP's labelling voters and, for held-out validation, a disjoint set of voters, side by side);
- scored datasets (LIVE, TID2013, KADID-10k, MPD): SRCC (with its bootstrap interval), KRCC,
  PLCC and RMSE after the logistic fit, and the same per distortion type (each type refitted);
- every metric is compared with the best one on the same items: a paired bootstrap
  (resampling whole reference images) and a Wilcoxon signed-rank test; all pairwise
  comparisons are kept in ``comparisons``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from mocodec.data.io import read_image
from mocodec.errors import ConfigError
from mocodec.iqa.correlation import correlate, finite_scores, orient
from mocodec.iqa.records import PairDataset, ScoredDataset
from mocodec.iqa.significance import wilcoxon_p_value
from mocodec.iqa.twoafc import twoafc
from mocodec.utils.bootstrap import Resampler, bootstrap_interval, bootstrap_p_value

Progress = Callable[[Iterable, int, str], Iterable]


@dataclass(frozen=True)
class MetricSpec:
    """A metric to evaluate: registry name, keyword arguments, and the label its table rows carry."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @classmethod
    def parse(cls, text: str, aliases: dict[str, str] | None = None) -> MetricSpec:
        """``NAME`` or ``NAME:CONFIG`` (a YAML/JSON file of keyword arguments; label ``NAME:STEM``).

        ``aliases`` maps names that are not registry names (``psnr``) to registry names (``mse``);
        the label keeps the name as written.
        """
        from mocodec.losses import DISTORTIONS
        from mocodec.registry import canonical_name

        written, _, config = text.strip().partition(":")
        name = (aliases or {}).get(canonical_name(written), written)
        DISTORTIONS.get(name)  # unknown names fail here, listing the known ones
        if not config:
            return cls(name, {}, written)
        return cls(name, read_config(config), f"{written}:{Path(config).stem}")

    def create(self):
        from mocodec.losses import create_distortion

        return create_distortion(self.name, **self.kwargs)


def read_config(path: str | Path) -> dict[str, Any]:
    """Keyword arguments from a YAML (or JSON, a subset of YAML) file holding one mapping."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"metric config {path} does not exist; give a YAML/JSON file of keyword arguments")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"metric config {path} is not valid YAML ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"metric config {path} must hold a mapping of keyword arguments, not a {type(data).__name__}")
    return data


@torch.inference_mode()
def score_images(
    fn: Callable[[Tensor, Tensor], Tensor],
    items: Sequence[tuple[Path, Path]],
    progress: Progress | None = None,
    desc: str = "scoring",
    batch_size: int = 16,
) -> np.ndarray:
    """``fn(x_hat, x)`` for each ``(distorted, reference)`` file pair.

    Returns an array of ``len(items)`` rows (``fn`` may return a vector per image, e.g. per-layer
    similarities). Items are grouped by reference: each reference is read once, and its
    distorted images are scored ``batch_size`` at a time (they have the reference's size).
    """
    by_reference: dict[Path, list[int]] = {}
    for i, (_, reference) in enumerate(items):
        by_reference.setdefault(reference, []).append(i)
    chunks = [
        (reference, group[k : k + batch_size])
        for reference, group in sorted(by_reference.items(), key=lambda kv: str(kv[0]))
        for k in range(0, len(group), batch_size)
    ]
    out: list[np.ndarray | None] = [None] * len(items)
    visit: Iterable = chunks if progress is None else progress(chunks, len(chunks), desc)
    x, x_path = None, None
    for reference, chunk in visit:
        if reference != x_path:
            x, x_path = read_image(reference)[0], reference
        distorted = []
        for i in chunk:
            y = read_image(items[i][0])[0]
            if y.shape != x.shape:
                raise ConfigError(
                    f"{items[i][0]} is {y.shape[-1]}x{y.shape[-2]} but its reference {reference} is {x.shape[-1]}x{x.shape[-2]}"
                )
            distorted.append(y)
        values = fn(torch.stack(distorted), x.expand(len(chunk), *x.shape)).detach().double().cpu().numpy()
        for i, value in zip(chunk, values):
            out[i] = value
    return np.stack(out) if items else np.zeros(0)


def pair_items(dataset: PairDataset) -> tuple[list[tuple[Path, Path]], np.ndarray, np.ndarray]:
    """The distinct ``(image, reference)`` items of a pair dataset and, per pair, the item index of A and of B."""
    index: dict[tuple[Path, Path], int] = {}
    for pair in dataset.pairs:
        for image in (pair.a, pair.b):
            index.setdefault((image, pair.reference), len(index))
    a = np.array([index[(p.a, p.reference)] for p in dataset.pairs], dtype=int)
    b = np.array([index[(p.b, p.reference)] for p in dataset.pairs], dtype=int)
    return list(index), a, b


def scored_items(dataset: ScoredDataset) -> list[tuple[Path, Path]]:
    return [(im.distorted, im.reference) for im in dataset.images]


@dataclass
class DatasetReport:
    """One dataset's tables: ``rows`` (one per metric), ``per_type`` (breakdown), ``comparisons`` (metric pairs)."""

    dataset: str
    kind: str  # "2afc" or "correlation"
    headline: list[str]  # the columns plotted (one bar group per metric), e.g. ["2afc[label]", "2afc[held-out]"]
    rows: list[dict[str, Any]]
    per_type: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def _best(values: dict[str, float]) -> str:
    finite = {k: v for k, v in values.items() if np.isfinite(v)}
    return max(finite, key=finite.get) if finite else next(iter(values))


def evaluate_pairs(
    dataset: PairDataset,
    scores: dict[str, np.ndarray],
    higher_is_better: dict[str, bool],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> DatasetReport:
    """2AFC of each metric per label set, with intervals and paired tests against the best metric.

    ``scores[metric]`` holds one score per item of :func:`pair_items` (A and B of every pair).
    """
    _, a, b = pair_items(dataset)
    groups = [str(p.reference) for p in dataset.pairs]
    metrics = list(scores)
    per_pair: dict[tuple[str, str], np.ndarray] = {}
    rows = {m: {"metric": m, "n": len(dataset.pairs)} for m in metrics}
    comparisons = []
    for label_set, p in dataset.labels.items():
        for m in metrics:
            result = twoafc(
                scores[m][a], scores[m][b], p, higher_is_better=higher_is_better[m], groups=groups, n_resamples=n_resamples, seed=seed
            )
            per_pair[(label_set, m)] = result.per_pair
            rows[m].update(
                {f"2afc[{label_set}]": result.score, f"low[{label_set}]": result.interval.low, f"high[{label_set}]": result.interval.high}
            )
        best = _best({m: rows[m][f"2afc[{label_set}]"] for m in metrics})
        for m1, m2 in combinations(metrics, 2):
            comparisons.append(
                compare_means(per_pair[(label_set, m1)], per_pair[(label_set, m2)], m1, m2, label_set, groups, n_resamples, seed)
            )
        for m in metrics:
            found = next((c for c in comparisons if c["labels"] == label_set and {c["a"], c["b"]} == {m, best}), None)
            rows[m][f"p_boot[{label_set}]"] = found["p_bootstrap"] if found else None
            rows[m][f"p_wilcoxon[{label_set}]"] = found["p_wilcoxon"] if found else None
    primary = next(iter(dataset.labels))
    kinds = np.array([" vs ".join(sorted((q.type_a, q.type_b))) for q in dataset.pairs])
    per_type = []
    for kind in sorted(set(kinds)):
        mask = kinds == kind
        for m in metrics:
            per_type.append(
                {"type": kind, "metric": m, f"2afc[{primary}]": float(per_pair[(primary, m)][mask].mean()), "n": int(mask.sum())}
            )
    notes = [
        f"2AFC = p·[metric prefers A] + (1−p)·[metric prefers B], mean over {len(dataset.pairs)} pairs; "
        f"95% interval and p-values by a paired bootstrap over {len(set(groups))} references ({n_resamples} resamples); "
        "p-values compare each metric with the best of its column"
    ]
    headline = [f"2afc[{label_set}]" for label_set in dataset.labels]
    return DatasetReport(dataset.name, "2afc", headline, list(rows.values()), per_type, comparisons, notes)


def compare_means(
    x: np.ndarray, y: np.ndarray, m1: str, m2: str, label_set: str, groups: Sequence[str], n_resamples: int, seed: int
) -> dict[str, Any]:
    """Metric ``m1`` vs ``m2`` on per-pair values ``x``, ``y`` of the same pairs: mean difference, paired bootstrap and Wilcoxon p-values."""
    d = x - y
    resampler = Resampler(d.size, groups, n_resamples=n_resamples, seed=seed)
    return {
        "labels": label_set,
        "a": m1,
        "b": m2,
        "difference": float(d.mean()),
        "p_bootstrap": bootstrap_p_value(lambda idx: float(d[idx].mean()), resampler),
        "p_wilcoxon": wilcoxon_p_value(x, y),
    }


def _srcc(q: np.ndarray, s: np.ndarray) -> float:
    return float(stats.spearmanr(q, s)[0]) if np.ptp(q) > 0 and np.ptp(s) > 0 else float("nan")


def evaluate_scored(
    dataset: ScoredDataset,
    scores: dict[str, np.ndarray],
    higher_is_better: dict[str, bool],
    *,
    logistic: str = "5",
    n_resamples: int = 1000,
    seed: int = 0,
) -> DatasetReport:
    """SRCC/KRCC/PLCC/RMSE per metric (and per distortion type), SRCC intervals and paired tests.

    The paired bootstrap compares SRCCs (rank-based: no refit per resample); the Wilcoxon test
    compares the per-image absolute residuals of the two metrics' fitted logistics.
    """
    subjective = dataset.scores
    s = orient(subjective, dataset.higher_is_better)
    groups = [str(im.reference) for im in dataset.images]
    metrics = list(scores)
    oriented = {m: orient(finite_scores(scores[m]), higher_is_better[m]) for m in metrics}
    results, rows = {}, []
    for m in metrics:
        results[m] = correlate(
            scores[m],
            subjective,
            metric_higher_is_better=higher_is_better[m],
            subjective_higher_is_better=dataset.higher_is_better,
            logistic=logistic,
        )
        resampler = Resampler(len(s), groups, n_resamples=n_resamples, seed=seed)
        interval = bootstrap_interval(lambda idx, q=oriented[m]: _srcc(q[idx], s[idx]), resampler)
        rows.append({"metric": m, **results[m].as_dict(), "srcc_low": interval.low, "srcc_high": interval.high})
    best = _best({m: results[m].srcc for m in metrics})
    comparisons = []
    for m1, m2 in combinations(metrics, 2):
        resampler = Resampler(len(s), groups, n_resamples=n_resamples, seed=seed)
        q1, q2 = oriented[m1], oriented[m2]
        comparisons.append(
            {
                "labels": dataset.score_name,
                "a": m1,
                "b": m2,
                "difference": results[m1].srcc - results[m2].srcc,
                "p_bootstrap": bootstrap_p_value(lambda idx, q1=q1, q2=q2: _srcc(q1[idx], s[idx]) - _srcc(q2[idx], s[idx]), resampler),
                "p_wilcoxon": wilcoxon_p_value(results[m1].residuals, results[m2].residuals),
            }
        )
    for row in rows:
        found = next((c for c in comparisons if {c["a"], c["b"]} == {row["metric"], best}), None)
        row["p_boot"] = found["p_bootstrap"] if found else None
        row["p_wilcoxon"] = found["p_wilcoxon"] if found else None
    types = np.array([im.type for im in dataset.images])
    per_type = []
    for kind in sorted(set(types)):
        mask = types == kind
        for m in metrics:
            if mask.sum() < 3:
                continue
            r = correlate(
                scores[m][mask],
                subjective[mask],
                metric_higher_is_better=higher_is_better[m],
                subjective_higher_is_better=dataset.higher_is_better,
                logistic=logistic,
            )
            per_type.append({"type": kind, "metric": m, "srcc": r.srcc, "krcc": r.krcc, "plcc": r.plcc, "n": r.n})
    direction = "higher" if dataset.higher_is_better else "lower"
    notes = [
        f"{len(s)} images, {dataset.score_name.upper()} ({direction} is better; oriented so that a good metric correlates positively); "
        f"PLCC/RMSE after the {logistic}-parameter logistic fit (refitted per distortion type); "
        f"SRCC interval and p_boot by a paired bootstrap over {len(set(groups))} references ({n_resamples} resamples), "
        "p_wilcoxon on the per-image absolute residuals; p-values compare each metric with the best SRCC"
    ]
    return DatasetReport(dataset.name, "correlation", ["srcc"], rows, per_type, comparisons, notes)


def evaluate_metrics(
    datasets: Sequence[ScoredDataset | PairDataset],
    metrics: Sequence[MetricSpec],
    *,
    logistic: str = "5",
    n_resamples: int = 1000,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[DatasetReport]:
    """Score every dataset with every metric (each metric built once) and evaluate: one report per dataset."""
    labels = [m.label for m in metrics]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"metrics are given twice: {', '.join(sorted({x for x in labels if labels.count(x) > 1}))}")
    items = [pair_items(d)[0] if isinstance(d, PairDataset) else scored_items(d) for d in datasets]
    scores: list[dict[str, np.ndarray]] = [{} for _ in datasets]
    directions: dict[str, bool] = {}
    for spec in metrics:
        metric = spec.create().eval()
        directions[spec.label] = bool(metric.higher_is_better)
        for k, dataset in enumerate(datasets):
            scores[k][spec.label] = score_images(metric.score, items[k], progress, f"{spec.label} on {dataset.name}")
        del metric
    reports = []
    for dataset, dataset_scores in zip(datasets, scores):
        if isinstance(dataset, PairDataset):
            reports.append(evaluate_pairs(dataset, dataset_scores, directions, n_resamples=n_resamples, seed=seed))
        else:
            reports.append(evaluate_scored(dataset, dataset_scores, directions, logistic=logistic, n_resamples=n_resamples, seed=seed))
    return reports
