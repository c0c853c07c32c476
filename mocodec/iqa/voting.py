"""Prediction-consistency votes: which of two distorted images does a frozen model treat more like the reference?

A **voter** is any frozen model that turns a batch of images into class distributions
(:class:`Voter`: ``probabilities(images) -> N x K``); classifiers of the classification
task are voters through :func:`create_voter` (EfficientNet-Lite0/1/2 offline). For each
distorted image ``x`` of a reference ``r``, a voter's *consistency* is

- ``top1_match``: ``argmax p(x) == argmax p(r)``;
- ``kl``: ``KL(p(r) ‖ p(x)) = Σ_k p_k(r) · log(p_k(r) / p_k(x))`` in nats (0 for identical outputs);
- ``cosine``: the cosine similarity of ``p(x)`` and ``p(r)`` (1 for identical outputs).

**Vote rule** (one voter, pair A/B), applied in order:

1. if exactly one of A and B keeps the reference's top-1 class, vote for it;
2. otherwise (both keep it, or neither does) vote for the one with the smaller KL
   divergence (or the larger cosine, with ``soft="cosine"``);
3. if the two soft values differ by at most ``tie_tolerance``, it is a **tie**: half a vote
   each. Identical images therefore always tie, whatever the batch arithmetic's last bits.

A vote is 1.0 (A), 0.0 (B) or 0.5 (tie); the pair's **soft label** is the mean vote over
voters — the fraction of votes for A, ties counting half — so a unanimous pair is 1 or 0
and an undecided one 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from mocodec.errors import ConfigError, WeightsError

_EPS = 1e-12  # floor of probabilities inside the KL's logarithm (float32 softmax underflows to 0)


@runtime_checkable
class Voter(Protocol):
    """A frozen model that predicts class distributions for N x 3 x H x W images in [0, 1]."""

    name: str

    def probabilities(self, images: Tensor) -> Tensor:
        """N x K, rows summing to 1."""


class TaskVoter:
    """A task of the task registry whose frozen model gives class distributions (``task.probabilities``)."""

    def __init__(self, name: str, task: Any):
        if not callable(getattr(task, "probabilities", None)):
            raise ConfigError(f"task {getattr(task, 'name', task)!r} predicts no class distributions; voters need probabilities(images)")
        self.name, self.task = name, task

    def probabilities(self, images: Tensor) -> Tensor:
        return self.task.probabilities(images)


def create_voter(spec: str, **task_kwargs: Any) -> TaskVoter:
    """A classifier voter from ``MODEL`` or ``MODEL=WEIGHTS_FILE``, through the classification task.

    ``MODEL`` is any name the classification task takes: ``efficientnet_lite0/1/2`` (real
    ImageNet weights, offline), a timm name, or ``torchvision:NAME`` (published weights, or
    the local ``WEIGHTS_FILE``). The voter's name is the model's canonical name.
    """
    from mocodec.tasks import create_task

    model, _, weights = spec.strip().partition("=")
    try:
        task = create_task("classification", model=model, weights=weights or None, **task_kwargs)
    except WeightsError as exc:
        raise WeightsError(f"{exc} (a voter takes its file as {model}=WEIGHTS_FILE)") from None
    return TaskVoter(task.identity().get("model") or model, task)


@dataclass(frozen=True)
class Consistency:
    """One voter's consistency of each of N images with the reference (arrays of length N)."""

    top1_match: np.ndarray  # bool
    kl: np.ndarray
    cosine: np.ndarray

    def record(self, i: int) -> dict[str, float | bool]:
        return {"top1_match": bool(self.top1_match[i]), "kl": float(self.kl[i]), "cosine": float(self.cosine[i])}

    @classmethod
    def from_records(cls, records: Sequence[dict[str, float | bool]]) -> Consistency:
        return cls(
            np.array([bool(r["top1_match"]) for r in records]),
            np.array([float(r["kl"]) for r in records]),
            np.array([float(r["cosine"]) for r in records]),
        )


def consistency(p_reference: Tensor, p_images: Tensor) -> Consistency:
    """Consistency of each row of ``p_images`` (N x K) with ``p_reference`` (K), computed in float64."""
    p_ref = p_reference.detach().double().reshape(1, -1)
    p = p_images.detach().double()
    if p.dim() != 2 or p.shape[1] != p_ref.shape[1]:
        raise ConfigError(f"voter outputs must be N x {p_ref.shape[1]}, got {tuple(p.shape)}")
    top1 = p.argmax(1) == p_ref.argmax(1)
    kl = (p_ref * (p_ref.clamp_min(_EPS).log() - p.clamp_min(_EPS).log())).sum(1).clamp_min(0)
    cosine = torch.nn.functional.cosine_similarity(p, p_ref.expand_as(p), dim=1)
    return Consistency(top1.numpy(), kl.numpy(), cosine.numpy())


@dataclass(frozen=True)
class VoteRule:
    """How one voter decides between two images; see the module docstring."""

    soft: str = "kl"  # "kl" (smaller wins) or "cosine" (larger wins)
    tie_tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if self.soft not in ("kl", "cosine"):
            raise ConfigError(f"unknown soft consistency '{self.soft}'; use kl or cosine")
        if not self.tie_tolerance >= 0:
            raise ConfigError(f"the tie tolerance must be non-negative, got {self.tie_tolerance}")

    def votes(self, c: Consistency, a: Sequence[int], b: Sequence[int]) -> np.ndarray:
        """One voter's votes on pairs ``(a[i], b[i])`` of images indexing ``c``: 1.0 A, 0.0 B, 0.5 tie."""
        a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
        # "distance" from the reference: smaller is more consistent
        d = c.kl if self.soft == "kl" else -c.cosine
        soft = np.where(np.abs(d[a] - d[b]) <= self.tie_tolerance, 0.5, (d[a] < d[b]).astype(np.float64))
        match_a, match_b = c.top1_match[a], c.top1_match[b]
        return np.where(match_a != match_b, match_a.astype(np.float64), soft)


def soft_label(votes: np.ndarray) -> np.ndarray:
    """Fraction of votes for A per pair, from a voters x pairs array of votes in {0, 0.5, 1}."""
    votes = np.asarray(votes, dtype=np.float64)
    if votes.ndim != 2 or votes.shape[0] == 0:
        raise ConfigError("soft labels need the votes of at least one voter")
    return votes.mean(axis=0)
