"""Results files in CompressAI's schema, extended with per-image records.

``{"name", "description", "results": {"bpp": [...], "psnr-rgb": [...], ...}, "per_image": [...]}``:
``results`` holds one list per metric with one value per rate point (sorted by
quality), exactly as CompressAI's ``eval_model`` writes them, so curves plot beside
CompressAI's published ones. ``per_image`` keeps every image's figures, so means
merged from several runs are exact rather than averages of averages.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from mocodec.errors import ConfigError
from mocodec.files import atomic_write_json


def mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    finite = [v for v in vals if math.isfinite(v)]
    return sum(finite) / len(finite) if len(finite) == len(vals) else (math.inf if vals else None)


def summarise(name: str, description: str, records: list[dict[str, Any]], metrics: Iterable[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Collapse per-image records (each with a ``quality``) into CompressAI's per-point lists."""
    by_quality: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_quality[rec["quality"]].append(rec)
    qualities = sorted(by_quality)
    results: dict[str, list[Any]] = {"quality": qualities, "num_images": [len(by_quality[q]) for q in qualities]}
    for metric in metrics:
        results[metric] = [mean(r.get(metric) for r in by_quality[q]) for q in qualities]
    out = {"name": name, "description": description, "results": results}
    out.update(extra or {})
    out["per_image"] = records
    return out


def write_results(path: str | Path, results: dict[str, Any]) -> None:
    atomic_write_json(path, _json_safe(results))


def _json_safe(obj: Any) -> Any:
    """JSON has no inf/nan: write them as strings CompressAI-style readers can skip."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def read_results(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"results file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"results file {path} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}); delete or fix it") from None
    if not isinstance(data, dict) or "results" not in data:
        raise ConfigError(f"results file {path} is not in CompressAI's schema (no 'results' key)")
    return data
