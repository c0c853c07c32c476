"""PSNR-matched pairs: two distortions of one reference, of different types, at (nearly) equal PSNR.

Matching on PSNR removes pixel fidelity as an explanation of a preference: whatever the
voters prefer in a matched pair, PSNR cannot tell the two apart. A pair (i, j) is matched
when ``type_i != type_j`` and ``|PSNR_i − PSNR_j| <= tolerance``; images with infinite PSNR
(unchanged by their distortion) never match. A/B order is randomised per pair, so no
family sits systematically in position A.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from mocodec.errors import ConfigError

REPORT_TOLERANCES = (0.1, 0.25, 0.5, 1.0, 2.0)  # dB; the build reports how many pairs each would give


def matched_pairs(types: Sequence[str], psnrs: Sequence[float], tolerance: float) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of different types whose PSNRs differ by at most ``tolerance`` dB."""
    if not tolerance >= 0:
        raise ConfigError(f"the PSNR tolerance must be a non-negative number of dB, got {tolerance}")
    psnr = np.asarray(psnrs, dtype=np.float64)
    kinds = np.asarray(types, dtype=object)
    if psnr.shape != kinds.shape:
        raise ConfigError(f"{kinds.size} types for {psnr.size} PSNRs")
    finite = np.isfinite(psnr)
    close = np.abs(psnr[:, None] - np.where(finite, psnr, 0)[None, :]) <= tolerance
    ok = close & (kinds[:, None] != kinds[None, :]) & finite[:, None] & finite[None, :]
    i, j = np.nonzero(np.triu(ok, k=1))
    return list(zip(i.tolist(), j.tolist()))


def pair_counts(
    groups: Iterable[tuple[Sequence[str], Sequence[float]]], tolerances: Sequence[float] = REPORT_TOLERANCES
) -> dict[float, int]:
    """How many matched pairs each tolerance yields over several references' ``(types, psnrs)``."""
    counts = {float(t): 0 for t in tolerances}
    for types, psnrs in groups:
        for t in counts:
            counts[t] += len(matched_pairs(types, psnrs, t))
    return counts


def orient_and_sample(pairs: Sequence[tuple[int, int]], rng: np.random.Generator, max_pairs: int | None = None) -> list[tuple[int, int]]:
    """Swap each pair's order with probability 1/2, and keep at most ``max_pairs`` (drawn without replacement)."""
    pairs = list(pairs)
    if max_pairs is not None and len(pairs) > max_pairs:
        keep = np.sort(rng.choice(len(pairs), size=max_pairs, replace=False))
        pairs = [pairs[k] for k in keep]
    swaps = rng.random(len(pairs)) < 0.5
    return [(j, i) if swap else (i, j) for (i, j), swap in zip(pairs, swaps)]
