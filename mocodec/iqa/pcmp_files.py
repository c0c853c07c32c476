"""Reading a PCMP build back (:mod:`mocodec.iqa.pcmp` writes it): its manifest, its voters, its pairs with their labels."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocodec.errors import ConfigError
from mocodec.iqa.records import PairDataset, PreferencePair
from mocodec.iqa.voting import soft_label
from mocodec.registry import canonical_name

VOTE_PREFIX = "vote:"  # pairs.csv holds one column of votes per voter, named vote:VOTER


@dataclass
class PCMPManifest:
    """The pairs of a complete PCMP build (``pairs.csv``, one dict per row) and the voters whose votes it holds."""

    root: Path
    rows: list[dict[str, str]]
    voters: list[str]

    def votes(self, voters: Sequence[str]) -> np.ndarray:
        """voters x pairs array of votes."""
        return np.array([[float(row[VOTE_PREFIX + v]) for row in self.rows] for v in voters]).reshape(len(voters), len(self.rows))


def read_pcmp_manifest(root: str | Path) -> PCMPManifest:
    """The manifest of a complete PCMP build (refuses interrupted ones)."""
    root = Path(root)
    if not (root / "pcmp.json").is_file():
        hint = "rerun the same `mocodec pcmp` command to finish it" if (root / "config.json").is_file() else "build one with `mocodec pcmp`"
        raise ConfigError(f"{root} is not a complete PCMP dataset (no pcmp.json); {hint}")
    with open(root / "pairs.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        voters = [c[len(VOTE_PREFIX) :] for c in reader.fieldnames or [] if c.startswith(VOTE_PREFIX)]
    return PCMPManifest(root, rows, voters)


def resolve_voters(requested: Sequence[str], available: Sequence[str], root: Path) -> list[str]:
    """The manifest's spelling of each requested voter (``efficientnet_lite2`` finds ``efficientnet-lite2``)."""
    by_canonical = {canonical_name(v): v for v in available}
    unknown = [v for v in requested if canonical_name(v) not in by_canonical]
    if unknown:
        raise ConfigError(f"{root} has no votes of {', '.join(unknown)}; its voters are {', '.join(available)}")
    return [by_canonical[canonical_name(v)] for v in requested]


def read_pcmp(root: str | Path, label_voters: Sequence[str] | None = None, heldout_voters: Sequence[str] | None = None) -> PairDataset:
    """A PCMP build as 2AFC pairs: ``"label"`` from ``label_voters`` and, if given, ``"held-out"`` from ``heldout_voters``.

    Held-out validation (so a metric cannot win by copying the labelling models' bias):
    the two voter sets must be disjoint; by default every voter not held out labels.
    """
    root = Path(root)
    manifest = read_pcmp_manifest(root)
    heldout = resolve_voters(heldout_voters or [], manifest.voters, manifest.root)
    labelling = resolve_voters(label_voters or [v for v in manifest.voters if v not in heldout], manifest.voters, manifest.root)
    if set(labelling) & set(heldout):
        raise ConfigError(
            f"labelling and held-out voters must be disjoint; both contain {', '.join(sorted(set(labelling) & set(heldout)))}"
        )
    if not labelling:
        raise ConfigError("no labelling voters are left; hold out fewer voters")
    pairs = [
        PreferencePair(root / r["reference"], root / r["image_a"], root / r["image_b"], r["type_a"], r["type_b"]) for r in manifest.rows
    ]
    labels = {"label": soft_label(manifest.votes(labelling)) if pairs else np.zeros(0)}
    if heldout:
        labels["held-out"] = soft_label(manifest.votes(heldout)) if pairs else np.zeros(0)
    return PairDataset("pcmp", pairs, labels)
