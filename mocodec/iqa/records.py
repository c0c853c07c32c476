"""IQA data in memory: scored images, preference pairs and their label sets (what every IQA loader returns)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ScoredImage:
    distorted: Path
    reference: Path
    score: float
    type: str  # distortion type, e.g. "jpeg" or "10 jpeg"
    level: str = ""  # distortion level where the dataset defines one


@dataclass
class ScoredDataset:
    """Images with subjective scores; correlations are computed against ``scores``."""

    name: str
    images: list[ScoredImage]
    higher_is_better: bool  # of the subjective score: MOS True, DMOS False
    score_name: str = "mos"

    @property
    def scores(self) -> np.ndarray:
        return np.array([im.score for im in self.images], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class PreferencePair:
    """Two distortions ``a`` and ``b`` of one ``reference``."""

    reference: Path
    a: Path
    b: Path
    type_a: str = ""
    type_b: str = ""


@dataclass
class PairDataset:
    """Pairs with one or more label sets: ``labels[name][i]`` is the probability that A of pair i is preferred.

    PCMP carries ``"label"`` (votes of the labelling voters) and, for held-out validation,
    ``"held-out"`` (votes of a disjoint set of voters); 2AFC is reported per label set.
    """

    name: str
    pairs: list[PreferencePair]
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pairs)


def pairs_from_scores(dataset: ScoredDataset, name: str | None = None) -> PairDataset:
    """All within-reference pairs of a scored dataset; label 1 if A scored better, 0 if B, 0.5 on equal scores."""
    by_reference: dict[Path, list[ScoredImage]] = defaultdict(list)
    for image in dataset.images:
        by_reference[image.reference].append(image)
    pairs, labels = [], []
    for reference, images in by_reference.items():
        for a, b in combinations(images, 2):
            pairs.append(PreferencePair(reference, a.distorted, b.distorted, a.type, b.type))
            if a.score == b.score:
                labels.append(0.5)
            else:
                labels.append(float((a.score > b.score) == dataset.higher_is_better))
    return PairDataset(name or f"{dataset.name}-pairs", pairs, {"label": np.array(labels)})
