"""Layer ablation of ML-CLIPSim on PCMP, with per-layer weights fitted on a training split.

ML-CLIPSim is linear in its components: ``S = Σ_l w_l · s_l + w_g · s_g`` with ``s_l`` the mean
token cosine of layer ``l`` and ``s_g`` the global-embedding cosine
(:meth:`~mocodec.losses.feature_similarity.MultiLayerFeatureSimilarity.similarities`). So the
encoder runs once per image, for every layer, and each configuration is a weight vector:

- ``layerN``: one layer alone; ``global``: the embedding alone;
- subsets (``3,6,9,12``: those layers and the global term, weighted 1 each, as ML-CLIPSim's defaults);
- ``uniform``: every layer and the global term, weighted 1 each;
- ``fitted``: weights ``w >= 0`` minimising a logistic 2AFC objective on the training pairs,

      min_w  −mean_i [p_i log σ(Δ_i·w) + (1 − p_i) log(1 − σ(Δ_i·w))] + (λ/2)‖w‖²,

  where ``Δ_i`` holds the component differences ``s(A_i) − s(B_i)`` (standardised per column,
  so λ acts alike on every layer) and ``p_i`` the PCMP label; the encoder stays frozen.

Pairs are split by reference photograph (train / held-out), so the fitted weights are
judged on references they never saw. The fitted weights are saved as a YAML config that
``create_distortion("ml-clipsim", **config)`` (or ``--metric ml-clipsim:CONFIG.yaml``) loads.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize

from mocodec.errors import ConfigError
from mocodec.iqa.evaluate import DatasetReport, MetricSpec, Progress, evaluate_pairs, pair_items, score_images
from mocodec.iqa.records import PairDataset
from mocodec.iqa.twoafc import metric_preference, twoafc_per_pair

LAYER_ARGUMENTS = {"layers", "layer_weights", "global_weight"}  # what a multi-layer metric's factory takes


@dataclass(frozen=True)
class Weighting:
    """One ablation configuration: a name and one weight per component (layers ascending, then global)."""

    name: str
    weights: np.ndarray  # normalised to sum to 1

    @classmethod
    def of(cls, name: str, raw: Sequence[float]) -> Weighting:
        raw = np.asarray(raw, dtype=np.float64)
        if raw.sum() <= 0:
            raise ConfigError(f"configuration {name} has no positive weight")
        return cls(name, raw / raw.sum())


def default_subsets(num_layers: int) -> list[list[int]]:
    """Quarter points (3,6,9,12 of a 12-block ViT: ML-CLIPSim's default), the first half, the second half."""
    quarters = sorted({max(1, round(num_layers * k / 4)) for k in (1, 2, 3, 4)})
    half = num_layers // 2
    subsets = [quarters, list(range(1, half + 1)), list(range(half + 1, num_layers + 1))]
    return [s for i, s in enumerate(subsets) if s and s not in subsets[:i]]


def weightings(layers: Sequence[int], subsets: Sequence[Sequence[int]]) -> list[Weighting]:
    """Single layers, the global term alone, each subset (+ global), and uniform over all components."""
    n = len(layers) + 1
    out = [Weighting.of(f"layer{layer}", np.eye(n)[i]) for i, layer in enumerate(layers)]
    out.append(Weighting.of("global", np.eye(n)[-1]))
    for subset in subsets:
        missing = [s for s in subset if s not in layers]
        if missing:
            raise ConfigError(
                f"subset {','.join(map(str, subset))} names layer(s) {missing} outside the encoder's layers {layers[0]}..{layers[-1]}"
            )
        out.append(Weighting.of(",".join(map(str, subset)) + "+global", [1.0 if layer in subset else 0.0 for layer in layers] + [1.0]))
    out.append(Weighting.of("uniform", np.ones(n)))
    return out


def fit_weights(delta: np.ndarray, p: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Non-negative component weights (summing to 1) fitted by the logistic 2AFC objective above.

    ``delta``: pairs x components differences ``s(A) − s(B)``; ``p``: probability that A is preferred.
    Constant columns get weight 0. With no signal at all, the weights fall back to uniform.
    """
    delta, p = np.asarray(delta, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if delta.ndim != 2 or delta.shape[0] != p.size or p.size == 0:
        raise ConfigError(f"fitting needs pairs x components differences and one label per pair, got {delta.shape} and {p.shape}")
    scale = delta.std(axis=0)
    usable = scale > 0
    z = np.where(usable, delta / np.where(usable, scale, 1.0), 0.0)

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        logits = z @ w
        # log σ(t) = −logaddexp(0, −t): stable for large |t|
        loss = np.mean(p * np.logaddexp(0, -logits) + (1 - p) * np.logaddexp(0, logits)) + 0.5 * ridge * w @ w
        grad = z.T @ (1 / (1 + np.exp(-logits)) - p) / p.size + ridge * w
        return float(loss), grad

    start = np.where(usable, 1.0, 0.0)
    result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * z.shape[1])
    w = np.where(usable, result.x / np.where(usable, scale, 1.0), 0.0)
    if w.sum() <= 0:
        return np.full(w.size, 1.0 / w.size)
    return w / w.sum()


def split_by_reference(dataset: PairDataset, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and held-out pairs; each reference's pairs go to one side only."""
    if not 0 < train_fraction < 1:
        raise ConfigError(f"--train-fraction must be between 0 and 1, got {train_fraction}")
    references = sorted({str(p.reference) for p in dataset.pairs})
    if len(references) < 2:
        raise ConfigError(f"splitting by reference needs at least 2 references; {dataset.name} has {len(references)}")
    rng = np.random.default_rng(seed)
    shuffled = [references[i] for i in rng.permutation(len(references))]
    n_train = min(len(references) - 1, max(1, round(train_fraction * len(references))))
    train_refs = set(shuffled[:n_train])
    is_train = np.array([str(p.reference) in train_refs for p in dataset.pairs])
    return np.flatnonzero(is_train), np.flatnonzero(~is_train)


def subset_pairs(dataset: PairDataset, indices: np.ndarray, name: str) -> PairDataset:
    return PairDataset(name, [dataset.pairs[i] for i in indices], {k: v[indices] for k, v in dataset.labels.items()})


@dataclass
class AblationResult:
    report: DatasetReport  # held-out split, one row per configuration (train-split 2AFC alongside)
    fitted: dict[str, Any]  # the metric config with fitted weights (what the YAML file holds)
    components: list[str]


def run_ablation(
    dataset: PairDataset,
    metric: MetricSpec = MetricSpec("ml-clipsim", {}, "ml-clipsim"),
    *,
    subsets: Sequence[Sequence[int]] | None = None,
    train_fraction: float = 0.5,
    ridge: float = 1e-3,
    n_resamples: int = 1000,
    seed: int = 0,
    progress: Progress | None = None,
) -> AblationResult:
    """Score every configuration on the held-out split of ``dataset`` after fitting weights on its training split."""
    from mocodec.losses import DISTORTIONS

    if not set(inspect.signature(DISTORTIONS.get(metric.name)).parameters) >= LAYER_ARGUMENTS:
        raise ConfigError(f"iqa ablate needs a multi-layer metric (ml-clipsim, ml-featsim); {metric.name} has no per-layer similarities")
    base = {k: v for k, v in metric.kwargs.items() if k not in LAYER_ARGUMENTS}
    model = MetricSpec(metric.name, {**base, "layers": "all", "layer_weights": None, "global_weight": 1.0}, metric.label).create()
    layers = list(model.layers)
    train, test = split_by_reference(dataset, train_fraction, seed)
    items, a, b = pair_items(dataset)
    components = score_images(model.similarities, items, progress, f"{metric.label} layers")  # items x (L + 1)
    label = dataset.labels["label"]
    fitted = Weighting.of("fitted", fit_weights(components[a[train]] - components[b[train]], label[train], ridge))
    configs = weightings(layers, subsets if subsets is not None else default_subsets(len(layers))) + [fitted]
    scores = {c.name: components @ c.weights for c in configs}
    # the held-out split's items are a subset of all items: reindex its pairs onto the full score arrays
    held_out = subset_pairs(dataset, test, f"{dataset.name}-ablation")
    held_items = pair_items(held_out)[0]
    position = {item: k for k, item in enumerate(items)}
    take = np.array([position[item] for item in held_items], dtype=int)
    report = evaluate_pairs(
        held_out, {name: s[take] for name, s in scores.items()}, dict.fromkeys(scores, True), n_resamples=n_resamples, seed=seed
    )
    train_groups = [str(dataset.pairs[i].reference) for i in train]
    for row in report.rows:
        s = scores[row["metric"]]
        row["2afc[train split]"] = float(twoafc_per_pair(metric_preference(s[a[train]], s[b[train]]), label[train]).mean())
    report.notes.append(
        f"{len(test)} held-out pairs of {len({str(dataset.pairs[i].reference) for i in test})} references; weights fitted on "
        f"{len(train)} training pairs of {len(set(train_groups))} other references (logistic 2AFC objective, ridge {ridge:g})"
    )
    config = {
        **_plain(base),
        "layers": layers,
        "layer_weights": [float(w) for w in fitted.weights[:-1]],
        "global_weight": float(fitted.weights[-1]),
    }
    return AblationResult(report, config, list(model.component_names))


def _plain(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments as YAML-safe values (paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in kwargs.items()}


def write_weights(path: str | Path, config: dict[str, Any], metric: str = "ml-clipsim") -> Path:
    """Save fitted weights as the YAML config ``--metric ml-clipsim:PATH`` loads."""
    import yaml

    from mocodec.files import atomic_write_text

    header = f"# {metric} keyword arguments with per-layer weights fitted by `mocodec iqa ablate`\n"
    atomic_write_text(path, header + yaml.safe_dump(config, sort_keys=False))
    return Path(path)
