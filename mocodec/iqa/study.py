"""The PCMP study: does a multi-layer feature similarity predict machine preference better than PSNR or MS-SSIM?

One command (``mocodec iqa study``) answers the question on a complete PCMP build whose pairs
carry the votes of several voters, with the checks referees ask for:

- **held-out voters**: every rotation labels the pairs with all voters but one (the soft label of
  the *labelling* voters) and keeps the votes of the remaining one apart (the *held-out* label);
  each voter is held out once;
- **metrics**: PSNR, MS-SSIM, and for every backbone (``ml-featsim`` on EfficientNet-Lite0/1/2 by
  default) the metric with its default layers, each single layer (stage), the global term alone,
  uniform weights over all components, and **fitted** weights; plus any metric the user names;
- **2AFC** against both labels, with 95 % intervals from a cluster bootstrap over references;
- **paired tests** (cluster bootstrap and Wilcoxon): every feature-similarity variant and every
  named metric against PSNR and against MS-SSIM; fitted against uniform and against default
  layer weights (same backbone);
- **label agreement**, the error analysis of the proxy: how often the held-out voter's vote agrees
  with the labelling voters' label, overall, per distortion family and per pair of families.

Fitted weights are *cross-fitted*: references are split into ``folds`` groups (seeded), and the
pairs of each group are scored with weights fitted (:func:`~mocodec.iqa.ablation.fit_weights`, on
the labelling voters' label only) on the pairs of the other groups. So every pair is judged by
weights that never saw its reference, and fitted weights are compared with the other metrics on
the same pairs; the in-sample 2AFC of the fits is reported beside, to show over-fitting.

Scores do not depend on the labels, so each image is scored **once per metric**: a multi-layer
metric runs once per image with every layer (its per-layer similarities), and every variant,
rotation and fitted weight vector is a weighted sum of those components. Scores are cached in
``OUT/scores/`` (keyed by the metric's configuration, the build's configuration and the images),
so rerunning a study after a crash, or with other statistics settings (``--force``), scores
nothing again. :mod:`mocodec.iqa.study_scores` keeps them; :mod:`mocodec.iqa.study_report` writes the tables, the reading and the figure.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mocodec.errors import ConfigError, OutputExistsError
from mocodec.iqa.ablation import LAYER_ARGUMENTS, fit_weights
from mocodec.iqa.evaluate import MetricSpec, Progress, compare_means, pair_items
from mocodec.iqa.pcmp_files import PCMPManifest, read_pcmp, read_pcmp_manifest
from mocodec.iqa.records import PairDataset
from mocodec.iqa.study_scores import SCORES_FOLDER, Scorer, ScoreTable, cached_scores, plain
from mocodec.iqa.twoafc import metric_preference, twoafc, twoafc_per_pair
from mocodec.iqa.voting import soft_label
from mocodec.losses import DISTORTIONS
from mocodec.losses.feature_similarity import normalised_weights, resolve_layers
from mocodec.registry import canonical_name
from mocodec.utils.bootstrap import Resampler, bootstrap_interval

STUDY_FILE = "study.json"  # written last: its presence means the study finished
DEFAULT_BACKBONES = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
BASELINES = (MetricSpec("mse", {}, "psnr"), MetricSpec("msssim", {}, "ms-ssim"))
LABEL_SETS = ("labelling", "held-out")


@dataclass(frozen=True)
class StudySettings:
    """What the study scores and how it tests.

    ``feature_metric``: the multi-layer metric and its base arguments (``model`` is set per backbone);
    ``metrics``: further metrics, each compared with PSNR and MS-SSIM; ``folds``: reference groups
    of the cross-fitting; ``alpha``: the level at which the reading calls a difference significant.
    """

    feature_metric: MetricSpec = MetricSpec("ml-featsim", {}, "ml-featsim")
    backbones: tuple[str, ...] = DEFAULT_BACKBONES
    metrics: tuple[MetricSpec, ...] = ()
    folds: int = 2
    ridge: float = 1e-3
    n_resamples: int = 1000
    seed: int = 0
    alpha: float = 0.05

    def as_dict(self) -> dict[str, Any]:
        spec = {"name": self.feature_metric.name, "kwargs": plain(self.feature_metric.kwargs), "label": self.feature_metric.label}
        return {
            "feature_metric": spec,
            "backbones": list(self.backbones),
            "metrics": [{"name": m.name, "kwargs": plain(m.kwargs), "label": m.label} for m in self.metrics],
            "folds": self.folds,
            "ridge": self.ridge,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "alpha": self.alpha,
        }


@dataclass(frozen=True)
class Rotation:
    """One held-out split: ``heldout`` votes apart, the ``labelling`` voters' soft label."""

    heldout: str
    labelling: tuple[str, ...]

    def label_key(self, label_set: str) -> str:
        """The key of this rotation's label set in the study's :class:`PairDataset`."""
        return f"{label_set}@{self.heldout}"

    def voters(self, label_set: str) -> tuple[str, ...]:
        return self.labelling if label_set == "labelling" else (self.heldout,)


@dataclass(frozen=True)
class MetricInfo:
    """A row of the study's tables: ``family`` (psnr, ms-ssim, the feature metric, a named metric), backbone and variant."""

    label: str
    family: str
    higher_is_better: bool
    backbone: str | None = None
    variant: str = ""  # default, layerN, global, uniform, fitted (feature metric only)


@dataclass
class StudyResult:
    """Everything the study computed; :func:`mocodec.iqa.study_report.write_study` writes it."""

    root: Path
    voters: list[str]
    rotations: list[Rotation]
    metrics: list[MetricInfo]
    twoafc: list[dict[str, Any]]  # one row per rotation, metric and label set
    comparisons: list[dict[str, Any]]  # paired tests
    agreement: list[dict[str, Any]]  # held-out vote vs labelling label, per rotation and group
    weights: list[dict[str, Any]]  # fitted weights per rotation, backbone and fold
    pairs: list[dict[str, Any]]  # per-pair records: votes, labels, fold, every metric's scores of A and B
    info: dict[str, Any] = field(default_factory=dict)  # build, settings, scores, timings


# --------------------------------------------------------------------------- inputs


def rotations_of(voters: Sequence[str]) -> list[Rotation]:
    """Every voter held out once, labelled by all the others."""
    return [Rotation(v, tuple(u for u in voters if u != v)) for v in voters]


def study_pairs(root: str | Path) -> tuple[PairDataset, PCMPManifest, list[Rotation]]:
    """The build's pairs with every rotation's two label sets (``labelling@V``, ``held-out@V``) in one dataset."""
    manifest = read_pcmp_manifest(root)
    if len(manifest.voters) < 2:
        raise ConfigError(
            f"{manifest.root} holds the votes of one voter ({', '.join(manifest.voters) or 'none'}); the study holds each voter "
            "out in turn and needs at least 2: build PCMP with several --voters"
        )
    if not manifest.rows:
        raise ConfigError(f"{manifest.root} has no pairs; build PCMP with a larger --tolerance or more distortion levels")
    dataset = read_pcmp(root)
    rotations = rotations_of(manifest.voters)
    dataset.labels = {}
    for rotation in rotations:
        dataset.labels[rotation.label_key("labelling")] = soft_label(manifest.votes(rotation.labelling))
        dataset.labels[rotation.label_key("held-out")] = manifest.votes([rotation.heldout])[0]
    return dataset, manifest, rotations


def plan_scorers(settings: StudySettings) -> list[Scorer]:
    """PSNR, MS-SSIM, the feature metric's components per backbone, the named metrics; checked before any work."""
    feature = settings.feature_metric
    parameters = inspect.signature(DISTORTIONS.get(feature.name)).parameters
    if not LAYER_ARGUMENTS | {"model"} <= set(parameters):
        raise ConfigError(
            f"the study's feature metric must be a multi-layer metric with backbones (ml-featsim, ml-clipsim); {feature.name} has none"
        )
    if not settings.backbones:
        raise ConfigError("give at least one backbone for the feature metric")
    if len(set(map(canonical_name, settings.backbones))) != len(settings.backbones):
        raise ConfigError(f"backbones are given twice: {', '.join(settings.backbones)}")
    if settings.folds < 2:
        raise ConfigError(f"--folds must be at least 2 (weights are fitted on the other folds), got {settings.folds}")
    base = {k: v for k, v in feature.kwargs.items() if k not in LAYER_ARGUMENTS | {"model"}}
    scorers = [Scorer(spec.label, spec) for spec in BASELINES]
    for backbone in settings.backbones:
        kwargs = {**base, "model": backbone, "layers": "all", "layer_weights": None, "global_weight": 1.0}
        scorers.append(Scorer(f"{feature.label}[{backbone}]", MetricSpec(feature.name, kwargs, feature.label), True, backbone))
    scorers += [Scorer(spec.label, spec) for spec in settings.metrics]
    labels = [s.label for s in scorers]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"metrics are given twice: {', '.join(sorted({x for x in labels if labels.count(x) > 1}))}")
    return scorers


def default_weights(settings: StudySettings, layers: Sequence[int]) -> np.ndarray:
    """The feature metric's own weights (its defaults, or its base config's) over all components (layers, then global)."""
    feature = settings.feature_metric
    parameters = inspect.signature(DISTORTIONS.get(feature.name)).parameters

    def setting(key: str) -> Any:
        return feature.kwargs[key] if key in feature.kwargs else parameters[key].default

    chosen = resolve_layers(setting("layers"), len(layers))
    weights = normalised_weights(len(chosen), setting("layer_weights"), setting("global_weight"))
    vector = np.zeros(len(layers) + 1)
    for layer, weight in zip(chosen, weights):
        vector[layers.index(layer)] = weight
    vector[-1] = weights[-1]
    return vector


def prepare_study_folder(out: str | Path, force: bool = False) -> Path:
    """Refuse a finished study unless ``force``, and any folder that is not a study's; an interrupted one is resumed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} is a file; give a folder for the study")
    if (out / STUDY_FILE).exists() and not force:
        raise OutputExistsError(f"{out} already holds a study; pass --force to redo its statistics (cached scores are reused)")
    if out.is_dir() and any(out.iterdir()) and not (out / SCORES_FOLDER).is_dir() and not (out / STUDY_FILE).exists():
        raise OutputExistsError(f"{out} exists and is not a study folder; give a new or empty folder")
    (out / SCORES_FOLDER).mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------------------- folds, fitted weights


def reference_folds(references: Sequence[str], folds: int, seed: int) -> dict[str, int]:
    """Each reference's fold (0 .. folds-1): a seeded permutation dealt round-robin, so fold sizes differ by at most one."""
    unique = sorted(set(references))
    if len(unique) < folds:
        raise ConfigError(f"{folds} folds need at least {folds} references with pairs; the build has {len(unique)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[i]: k % folds for k, i in enumerate(order)}


def cross_fitted(
    components: np.ndarray, a: np.ndarray, b: np.ndarray, label: np.ndarray, pair_fold: np.ndarray, item_fold: np.ndarray, ridge: float
) -> tuple[np.ndarray, list[np.ndarray], list[float]]:
    """Per-item scores with each fold's items weighted by weights fitted on the other folds' pairs.

    Returns the scores, the weights of each fold, and each fit's in-sample 2AFC (on its training pairs).
    """
    scores = np.zeros(components.shape[0])
    weights, in_sample = [], []
    for fold in range(int(pair_fold.max()) + 1):
        train = pair_fold != fold
        w = fit_weights(components[a[train]] - components[b[train]], label[train], ridge)
        scores[item_fold == fold] = components[item_fold == fold] @ w
        fitted = components @ w
        in_sample.append(float(twoafc_per_pair(metric_preference(fitted[a[train]], fitted[b[train]]), label[train]).mean()))
        weights.append(w)
    return scores, weights, in_sample


# --------------------------------------------------------------------------- statistics


def judge_relation(backbone: str | None, judges: Sequence[str], voters: Sequence[str]) -> str:
    """How a feature metric relates to the voters whose label judges it: ``own`` backbone, ``other`` voters, or ``not a voter``."""
    if backbone is None:
        return ""
    if canonical_name(backbone) in {canonical_name(v) for v in judges}:
        return "own"
    return "other" if canonical_name(backbone) in {canonical_name(v) for v in voters} else "not a voter"


def rounded(label: np.ndarray) -> np.ndarray:
    """A soft label as a decision: 1 (A) above 1/2, 0 (B) below, 1/2 (undecided) at exactly 1/2."""
    return np.where(label > 0.5, 1.0, np.where(label < 0.5, 0.0, 0.5))


def agreement_per_pair(heldout_vote: np.ndarray, label: np.ndarray) -> np.ndarray:
    """1 where the held-out vote and the rounded label pick the same image, 0 where they differ, 1/2 where either is undecided.

    This is the 2AFC rule with the held-out vote as the "metric" and the rounded label as ``p``:
    a tie of the held-out voter or an undecided label counts half.
    """
    return twoafc_per_pair(np.asarray(heldout_vote, dtype=np.float64), rounded(label))


def agreement_rows(rotation: Rotation, dataset: PairDataset, groups: list[str], settings: StudySettings) -> list[dict[str, Any]]:
    """Agreement of the held-out voter with the labelling label: overall, per family involved, per pair of families."""
    label = dataset.labels[rotation.label_key("labelling")]
    vote = dataset.labels[rotation.label_key("held-out")]
    agree = agreement_per_pair(vote, label)
    decided = (vote != 0.5) & (rounded(label) != 0.5)
    type_pairs = np.array([" vs ".join(sorted((p.type_a, p.type_b))) for p in dataset.pairs])
    families = sorted({t for p in dataset.pairs for t in (p.type_a, p.type_b)})
    selections = [("all", "all", np.ones(len(agree), dtype=bool))]
    selections += [("family", f, np.array([f in (p.type_a, p.type_b) for p in dataset.pairs])) for f in families]
    selections += [("pair", kind, type_pairs == kind) for kind in sorted(set(type_pairs))]
    rows = []
    for kind, name, mask in selections:
        idx = np.flatnonzero(mask)
        resampler = Resampler(idx.size, [groups[i] for i in idx], n_resamples=settings.n_resamples, seed=settings.seed)
        values = agree[idx]
        interval = bootstrap_interval(lambda r, v=values: float(v[r].mean()), resampler)
        both = decided[idx]
        rows.append(
            {
                "rotation": rotation.heldout,
                "group_kind": kind,
                "group": name,
                "n": int(idx.size),
                "agreement": interval.estimate,
                "low": interval.low,
                "high": interval.high,
                "undecided": float(1 - both.mean()),
                "agreement_decided": float(values[both].mean()) if both.any() else None,
            }
        )
    return rows


def _outcome(difference: float, p_bootstrap: float, alpha: float) -> str:
    way = "higher" if difference > 0 else "lower" if difference < 0 else "equal"
    return f"{way}, {'significant' if p_bootstrap < alpha else 'not significant'}"


def fixed_variants(
    scorers: Sequence[Scorer], tables: dict[str, ScoreTable], settings: StudySettings
) -> tuple[list[MetricInfo], dict[str, np.ndarray]]:
    """Every metric row and the per-item scores of those that do not depend on the labels.

    A feature metric's components give its default weighting, each single layer, the global term,
    uniform weights; its fitted weights (label-dependent) are added per rotation by :func:`cross_fitted`.
    """
    metrics: list[MetricInfo] = []
    scores: dict[str, np.ndarray] = {}
    for scorer in scorers:
        table = tables[scorer.label]
        if not scorer.components:
            metrics.append(MetricInfo(scorer.label, scorer.spec.label, table.higher_is_better))
            scores[scorer.label] = table.values.reshape(-1)
            continue
        n = len(table.layers) + 1
        fixed = {
            "default": default_weights(settings, table.layers),
            **{f"layer{layer}": np.eye(n)[i] for i, layer in enumerate(table.layers)},
            "global": np.eye(n)[-1],
            "uniform": np.full(n, 1 / n),
        }
        for variant, w in fixed.items():
            label = scorer.label if variant == "default" else f"{scorer.label}/{variant}"
            metrics.append(MetricInfo(label, settings.feature_metric.label, True, scorer.backbone, variant))
            scores[label] = table.values @ w
        metrics.append(MetricInfo(f"{scorer.label}/fitted", settings.feature_metric.label, True, scorer.backbone, "fitted"))
    return metrics, scores


# Paired tests between weightings of one backbone's components: kind -> (suffix of a, suffix of b, what it asks).
# "Default/fitted vs global" asks whether the intermediate layers add anything to the global embedding alone.
WEIGHTING_TESTS: dict[str, tuple[str, str, str]] = {
    "fitted vs uniform": ("/fitted", "/uniform", "fitted (cross-fitted) vs uniform weights"),
    "fitted vs default": ("/fitted", "", "fitted (cross-fitted) vs default weights"),
    "default vs global": ("", "/global", "default layers vs the global term alone"),
    "fitted vs global": ("/fitted", "/global", "fitted (cross-fitted) weights vs the global term alone"),
}


def paired_tests(metrics: Sequence[MetricInfo], settings: StudySettings) -> list[tuple[str, str, str]]:
    """``(a, b, kind)``: every non-baseline metric vs PSNR and vs MS-SSIM; per backbone the :data:`WEIGHTING_TESTS`."""
    baselines = [spec.label for spec in BASELINES]
    tests = [(m.label, base, f"vs {base}") for m in metrics if m.label not in baselines for base in baselines]
    for backbone in settings.backbones:
        prefix = f"{settings.feature_metric.label}[{backbone}]"
        tests += [(prefix + a, prefix + b, kind) for kind, (a, b, _) in WEIGHTING_TESTS.items()]
    return tests


def run_study(
    pcmp: str | Path, out: str | Path, settings: StudySettings = StudySettings(), *, force: bool = False, progress: Progress | None = None
) -> StudyResult:
    """Score every image once per metric, then every rotation's 2AFC, paired tests and label agreement (see the module docstring)."""
    root = Path(pcmp)
    dataset, manifest, rotations = study_pairs(root)
    scorers = plan_scorers(settings)
    items, a, b = pair_items(dataset)
    groups = [str(p.reference) for p in dataset.pairs]
    fold_of = reference_folds(groups, settings.folds, settings.seed)
    pair_fold = np.array([fold_of[g] for g in groups])
    item_fold = np.array([fold_of[str(reference)] for _, reference in items])
    out = prepare_study_folder(out, force)  # every input checked: only now is anything written or scored
    started = time.perf_counter()
    tables = {s.label: cached_scores(s, items, root, out / SCORES_FOLDER, progress) for s in scorers}
    scored = time.perf_counter()

    metrics, scores = fixed_variants(scorers, tables, settings)
    info_of = {m.label: m for m in metrics}
    pair_scores = {f"{side}:{label}": s[index] for label, s in scores.items() for side, index in (("A", a), ("B", b))}

    rows, weights = [], []
    per_pair: dict[tuple[str, str, str], np.ndarray] = {}  # (rotation, label set, metric) -> per-pair 2AFC
    figures: dict[tuple[str, str, str], float] = {}
    work = [(rotation, info) for rotation in rotations for info in metrics]
    for rotation, info in work if progress is None else progress(work, len(work), "study: 2AFC"):
        label = dataset.labels[rotation.label_key("labelling")]
        extra: dict[str, Any] = {}
        if info.variant == "fitted":  # weights fitted on the labelling voters' label, never on the held-out votes
            table = tables[info.label.removesuffix("/fitted")]
            s, fold_weights, in_sample = cross_fitted(table.values, a, b, label, pair_fold, item_fold, settings.ridge)
            pair_scores[f"A:{info.label}@{rotation.heldout}"], pair_scores[f"B:{info.label}@{rotation.heldout}"] = s[a], s[b]
            for fold, (w, fit) in enumerate(zip(fold_weights, in_sample)):
                weights.append(
                    {
                        "rotation": rotation.heldout,
                        "backbone": info.backbone,
                        "fold": fold,
                        "train_pairs": int((pair_fold != fold).sum()),
                        "2afc_in_sample": fit,
                        **{c: float(v) for c, v in zip(table.columns, w)},
                    }
                )
            extra = {"2afc_in_sample": float(np.mean(in_sample))}
        else:
            s = scores[info.label]
        for label_set in LABEL_SETS:
            result = twoafc(
                s[a],
                s[b],
                dataset.labels[rotation.label_key(label_set)],
                higher_is_better=info.higher_is_better,
                groups=groups,
                n_resamples=settings.n_resamples,
                seed=settings.seed,
            )
            key = (rotation.heldout, label_set, info.label)
            per_pair[key], figures[key] = result.per_pair, result.score
            rows.append(
                {
                    "rotation": rotation.heldout,
                    "labels": label_set,
                    "voters": "+".join(rotation.voters(label_set)),
                    "metric": info.label,
                    "family": info.family,
                    "backbone": info.backbone or "",
                    "variant": info.variant,
                    "judge": judge_relation(info.backbone, rotation.voters(label_set), manifest.voters),
                    "2afc": result.score,
                    "low": result.interval.low,
                    "high": result.interval.high,
                    "n": int(result.per_pair.size),
                    "higher_is_better": info.higher_is_better,
                    **(extra if label_set == "labelling" else {}),
                }
            )

    comparisons, agreement = [], []
    tests = [(rotation, label_set, *test) for rotation in rotations for label_set in LABEL_SETS for test in paired_tests(metrics, settings)]
    for rotation, label_set, m1, m2, kind in tests if progress is None else progress(tests, len(tests), "study: paired tests"):
        key1, key2 = (rotation.heldout, label_set, m1), (rotation.heldout, label_set, m2)
        test = compare_means(per_pair[key1], per_pair[key2], m1, m2, label_set, groups, settings.n_resamples, settings.seed)
        comparisons.append(
            {
                "rotation": rotation.heldout,
                "labels": label_set,
                "comparison": kind,
                "a": m1,
                "b": m2,
                "judge": judge_relation(info_of[m1].backbone, rotation.voters(label_set), manifest.voters),
                "2afc_a": figures[key1],
                "2afc_b": figures[key2],
                "difference": test["difference"],
                "p_bootstrap": test["p_bootstrap"],
                "p_wilcoxon": test["p_wilcoxon"],
                "outcome": _outcome(test["difference"], test["p_bootstrap"], settings.alpha),
            }
        )
    for rotation in rotations:
        agreement += agreement_rows(rotation, dataset, groups, settings)

    records = []
    for i, row in enumerate(manifest.rows):
        record = {
            k: row[k] for k in ("pair_id", "reference", "image_a", "image_b", "type_a", "level_a", "type_b", "level_b", "psnr_a", "psnr_b")
        }
        record["fold"] = int(pair_fold[i])
        record.update({f"vote:{v}": float(row[f"vote:{v}"]) for v in manifest.voters})
        record.update({r.label_key("labelling"): float(dataset.labels[r.label_key("labelling")][i]) for r in rotations})
        record.update({column: float(values[i]) for column, values in pair_scores.items()})
        records.append(record)
    summary = json.loads((root / "pcmp.json").read_text())
    info = {
        "pcmp": str(root),
        "build": {k: summary.get(k) for k in ("references", "images", "pairs", "tolerance", "voter_agreement", "labels")}
        | {"families": summary.get("config", {}).get("families"), "voters": list(manifest.voters)},
        "settings": settings.as_dict(),
        "images_scored": len(items),
        "scores": {
            label: {"file": t.file.name, "columns": t.columns, "cached": t.cached, "seconds": round(t.seconds, 2)}
            for label, t in tables.items()
        },
        "seconds": {"scoring": round(scored - started, 2), "statistics": round(time.perf_counter() - scored, 2)},
    }
    return StudyResult(root, list(manifest.voters), rotations, metrics, rows, comparisons, agreement, weights, records, info)
