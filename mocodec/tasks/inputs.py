"""What detection and VQA tasks share about their inputs: 8-bit pixels, and labelled images that are absent."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mocodec.errors import ConfigError
from mocodec.tasks.base import Sample


def to_uint8_images(batch: Tensor) -> list[np.ndarray]:
    """N x 3 x H x W floats in [0, 1] -> H x W x 3 uint8 arrays: what an 8-bit PNG of each holds."""
    return list(batch.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())


def report_missing(samples: Sequence[Sample], missing: Sequence[tuple[str, str]]) -> None:
    """Warn (one line) about images the labels name but the folder lacks; none present at all is an error."""
    if not missing:
        return
    if not samples:
        raise ConfigError(f"none of the {len(missing)} labelled images are present (first: {missing[0][0]}); check the image folder")
    warnings.warn(
        f"{len(missing)} labelled image(s) are absent (first: {missing[0][0]}); evaluating the {len(samples)} present", stacklevel=3
    )


def number_option(value: Any, name: str, kind: Callable[[Any], Any] = float, minimum: float | None = None) -> Any:
    """``value`` as ``kind`` (options come from the command line as text: ``conf=1e-9`` is a str to YAML)."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option {name} must be a{'n integer' if kind is int else ' number'}, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"option {name} must be >= {minimum}, got {value!r}")
    return number
