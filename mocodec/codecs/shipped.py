"""Codec weights shipped inside the package: trained by mocodec, offline, checksummed.

``mocodec compress --codec mbt2018-mean-small --quality Q --pretrained`` loads the weights in
``mocodec/codecs/weights/`` (installed with the package, never downloaded). ``manifest.json``
there lists, per codec and quality, the file, its SHA-256, and how it was trained (λ,
distortions, steps, starting weights; docs/shipped_codec.md has the recipe and wall time); a file whose digest differs is refused with one line, before
any of its bytes reach ``torch.load``. Weights replaced by newer ones are listed in ``retired.json``
(digest, codec, quality, date), so that a file coded with them is told apart from a damaged or foreign
one: decoding it needs the mocodec that shipped them, or their file as ``--checkpoint``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

from mocodec.errors import ConfigError, WeightsError
from mocodec.files import atomic_write_json

WEIGHTS_DIR = Path(__file__).with_name("weights")
MANIFEST = "manifest.json"
RETIRED = "retired.json"


def _package_json(name: str, folder: Path | None) -> dict[str, Any]:
    """One of the weights folder's JSON files (empty if absent); a damaged one is refused in one line."""
    path = (folder or WEIGHTS_DIR) / name
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise WeightsError(f"{path} is damaged; reinstall mocodec (pip install --force-reinstall mocodec)") from None


def manifest(folder: Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{codec name: {quality (str): {"file", "sha256", ...}}}`` of the shipped weights (empty if none)."""
    return _package_json(MANIFEST, folder)


def retired(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    """``{sha256: {"codec", "quality", "retired"}}`` of weights mocodec shipped once and has replaced since."""
    return _package_json(RETIRED, folder)


def _names(digest: str, weights_id: bytes) -> bool:
    """Whether ``weights_id`` (a bitstream header's first bytes of the weights' SHA-256) names the file of hex ``digest``."""
    return bytes.fromhex(digest)[: len(weights_id)] == weights_id


def retired_weights(weights_id: bytes, folder: Path | None = None) -> str | None:
    """Which retired shipped weights ``weights_id`` (a bitstream header's digest prefix) names, in words; None if none."""
    for digest, entry in retired(folder).items():
        if _names(digest, weights_id):
            return f"the {entry['codec']} quality {entry['quality']} weights mocodec shipped until {entry['retired']}"
    return None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shipped_weights(name: str, quality: int, folder: Path | None = None) -> Path:
    """The verified file of the weights shipped for codec ``name`` at ``quality``."""
    folder = folder or WEIGHTS_DIR
    entries = manifest(folder).get(name, {})
    entry = entries.get(str(quality))
    if entry is None:
        known = ", ".join(sorted(entries, key=int)) or "none"
        raise ConfigError(f"mocodec ships no weights for {name} quality {quality}; qualities with weights: {known}")
    path = folder / entry["file"]
    if not path.is_file():
        raise WeightsError(
            f"the weights shipped for {name} quality {quality} ({path}) are missing; "
            "reinstall mocodec (pip install --force-reinstall mocodec)"
        )
    if sha256(path) != entry["sha256"]:
        raise WeightsError(
            f"the weights shipped for {name} quality {quality} ({path}) are damaged (SHA-256 mismatch); "
            "reinstall mocodec (pip install --force-reinstall mocodec)"
        )
    return path


def is_shipped(name: str, quality: int, weights_id: bytes, folder: Path | None = None) -> bool:
    """Whether ``weights_id`` (a bitstream header's first 8 bytes of the weights' SHA-256) names the shipped weights."""
    entry = manifest(folder).get(name, {}).get(str(quality))
    return entry is not None and _names(entry["sha256"], weights_id)


def record(name: str, quality: int, path: Path, facts: dict[str, Any], folder: Path | None = None) -> dict[str, Any]:
    """Enter weights file ``path`` (inside ``folder``) in the manifest as codec ``name`` at ``quality``: digest, size, ``facts``."""
    folder = folder or WEIGHTS_DIR
    entries = manifest(folder)
    entry = {"file": path.name, "sha256": sha256(path), "bytes": path.stat().st_size, **facts}
    previous = entries.get(name, {}).get(str(quality))
    if previous is not None and previous["sha256"] != entry["sha256"]:  # files coded with it must still be recognised
        gone = retired(folder)
        gone[previous["sha256"]] = {"codec": name, "quality": quality, "retired": datetime.date.today().isoformat()}
        atomic_write_json(folder / RETIRED, gone)
    entries.setdefault(name, {})[str(quality)] = entry
    entries[name] = dict(sorted(entries[name].items(), key=lambda kv: int(kv[0])))
    atomic_write_json(folder / MANIFEST, entries)
    return entry


__all__ = ["WEIGHTS_DIR", "manifest", "retired", "retired_weights", "sha256", "shipped_weights", "is_shipped", "record"]
