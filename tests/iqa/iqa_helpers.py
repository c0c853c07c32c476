"""Tiny voters for the IQA tests: no weights, milliseconds per call."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class ProjectionVoter:
    """A tiny random 'classifier': 8x8 thumbnail -> fixed random linear map -> softmax over ``classes``.

    Deterministic for a seed; sensitive to blur, noise and colour like a real model, at no cost.
    """

    def __init__(self, name: str, seed: int, classes: int = 10, temperature: float = 0.05):
        generator = torch.Generator().manual_seed(seed)
        self.name = name
        self.weight = torch.randn(3 * 8 * 8, classes, generator=generator, dtype=torch.float64)
        self.temperature = temperature

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        thumbs = F.adaptive_avg_pool2d(images.double(), 8).flatten(1)
        return torch.softmax((thumbs - 0.5) @ self.weight / (self.temperature * 64), dim=1)


class ExplodingVoter(ProjectionVoter):
    """A voter that stops the build (as Ctrl-C would) on its ``after``-th call."""

    def __init__(self, name: str, seed: int, after: int):
        super().__init__(name, seed)
        self.calls, self.after = 0, after

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls >= self.after:
            raise KeyboardInterrupt
        return super().probabilities(images)
