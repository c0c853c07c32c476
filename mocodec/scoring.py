"""Score distorted images against their references with one registered distortion metric.

:func:`score_pairs` is ``mocodec score`` without the command line: it pairs two image
files, or two folders by relative file name (extension ignored, so ``a.png`` pairs with
``a.jpg``), builds the metric, and scores every pair of one size::

    from mocodec.scoring import score_pairs

    scores = score_pairs("ref/", "decoded/", "ml-featsim", options={"layers": (3, 7)})
    print(scores.mean(), scores.to_csv())

Metric names are the distortion registry's (``mocodec list``), plus the aliases of
:data:`METRIC_ALIASES` (``psnr`` is the score of the ``mse`` term).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mocodec.data.io import list_images, read_image
from mocodec.errors import ConfigError
from mocodec.losses import DISTORTIONS, create_distortion
from mocodec.registry import canonical_name
from mocodec.utils.options import unknown_options
from mocodec.utils.tables import to_csv

# Metric names that are not registry names: PSNR is the score of the `mse` term.
METRIC_ALIASES = {"psnr": "mse", "ms-ssim": "msssim"}

Progress = Callable[[Iterable, int, str], Iterable]


def metric_name(metric: str) -> str:
    """The distortion registry's name of ``metric`` (``psnr`` -> ``mse``); other names unchanged."""
    return METRIC_ALIASES.get(canonical_name(metric), metric)


def check_metric_options(metric: str, options: Mapping[str, Any], spelled: Mapping[str, str] | None = None) -> str:
    """The registry name of ``metric``, after refusing ``options`` its factory does not take.

    ``spelled`` maps an option's keyword to the way the caller's user writes it (the command
    line: ``layers`` -> ``--layers``), for the error message.
    """
    name = metric_name(metric)
    foreign = unknown_options(DISTORTIONS.get(name), options)
    if foreign:
        spelled = spelled or {}
        raise ConfigError(f"{', '.join(spelled.get(k, k) for k in foreign)} does not apply to metric '{metric}'")
    return name


def image_pairs(reference: Path, distorted: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(reference, distorted) pairs of two files, or of two folders by relative name without extension; unmatched."""
    if reference.is_file() and distorted.is_file():
        return [(reference, distorted)], []
    if not (reference.is_dir() and distorted.is_dir()):
        raise ConfigError(f"give two image files or two folders, got {reference} and {distorted}")
    refs = {p.relative_to(reference).with_suffix(""): p for p in list_images(reference)}
    pairs, unmatched = [], []
    for p in list_images(distorted):
        key = p.relative_to(distorted).with_suffix("")
        if key in refs:
            pairs.append((refs[key], p))
        else:
            unmatched.append(p)
    if not pairs:
        raise ConfigError(f"no image in {distorted} has a namesake in {reference}; pairs are matched by file name")
    return pairs, unmatched


@dataclass
class PairScores:
    """The scores of image pairs by one metric, and the images left out (with why)."""

    metric: str  # the score's name, e.g. psnr for the mse term
    higher_is_better: bool
    rows: list[dict[str, Any]] = field(default_factory=list)  # reference, distorted, the score (a float)
    skipped: list[str] = field(default_factory=list)  # why each pair of two sizes was not scored
    unmatched: list[Path] = field(default_factory=list)  # distorted images without a reference

    @property
    def values(self) -> list[float]:
        return [row[self.metric] for row in self.rows]

    def mean(self) -> float:
        """The mean score; nan when no pair was scored."""
        values = self.values
        return sum(values) / len(values) if values else math.nan

    def to_csv(self) -> str:
        """One line per pair: reference, distorted, the score with six decimals."""
        rows = [{**row, self.metric: f"{row[self.metric]:.6f}"} for row in self.rows]
        return to_csv(rows, ["reference", "distorted", self.metric])


def score_pairs(
    reference: str | Path,
    distorted: str | Path,
    metric: str = "ml-clipsim",
    *,
    options: Mapping[str, Any] | None = None,
    spelled: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> PairScores:
    """Score the distorted image(s) against the reference(s): two files, or two folders paired by file name.

    ``options``: keyword arguments of the metric's factory (checked before any image is
    read or model loaded; ``spelled`` names them in errors, see :func:`check_metric_options`).
    A pair of two sizes is an error for two files, and skipped (with why) within folders.
    """
    options = dict(options or {})
    name = check_metric_options(metric, options, spelled)
    pairs, unmatched = image_pairs(Path(reference), Path(distorted))
    scorer = create_distortion(name, **options)
    scores = PairScores(scorer.score_name, scorer.higher_is_better, unmatched=unmatched)
    items = progress(pairs, len(pairs), "score") if progress is not None else pairs
    for ref, dist in items:
        x, y = read_image(ref)[0], read_image(dist)[0]
        if x.shape != y.shape:
            why = f"{dist} is {y.shape[2]}x{y.shape[1]} but its reference {ref} is {x.shape[2]}x{x.shape[1]}; score images of one size"
            if len(pairs) == 1:
                raise ConfigError(why)
            scores.skipped.append(why)
            continue
        with torch.no_grad():
            value = scorer.score(y[None], x[None]).item()
        scores.rows.append({"reference": ref, "distorted": dist, scores.metric: value})
    return scores
