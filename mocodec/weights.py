"""What every weights resolver shares: the cache folder, downloads, digests, safe loading and hub files.

Each backend turns its own pretrained names into files next to its code, with these pieces:
CompressAI's zoo in :mod:`mocodec.codecs.zoo`, EfficientNet-Lite, timm and torchvision in
:mod:`mocodec.backbones`, open_clip in :mod:`mocodec.losses.ml_clipsim`, ultralytics in
:mod:`mocodec.tasks.detectors`, transformers snapshots in :mod:`mocodec.tasks.vlm_models`.

Model hubs are often unreachable (offline machines, clusters without egress):
every failure says which file to place where, or which flag takes a local file.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import safetensors
import safetensors.torch
import torch

from mocodec.errors import WeightsError

# How the Python API and the CLI take a local weights file where a pretrained tag was expected.
PRETRAINED_FILE_HINT = "pretrained=FILE (CLI: --pretrained FILE)"


def cache_dir() -> Path:
    """Where downloaded weights live: torch.hub's checkpoint folder (``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_url_path(url: str) -> Path:
    return cache_dir() / os.path.basename(urlparse(url).path)


def fetch_url(url: str, *, what: str, alternative: str = "--checkpoint PATH") -> Path:
    """Return the cached file for ``url``, downloading it once; offline: a clear WeightsError."""
    target = cached_url_path(url)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(target), progress=False)
    except Exception as exc:  # network errors come in many types; all mean the same here
        target.unlink(missing_ok=True)
        raise WeightsError(
            f"cannot download {what} from {url} ({type(exc).__name__}); place that file at {target}, or pass {alternative}"
        ) from None
    return target


def file_digest(path: str | os.PathLike, length: int = 8) -> bytes:
    """First ``length`` bytes of the file's SHA-256: identifies the weights a bitstream needs."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.digest()[:length]


def load_checkpoint(path: str | os.PathLike, *, what: str = "checkpoint") -> dict[str, Any]:
    """``torch.load`` a file safely (``weights_only=True``): tensors and plain data, never code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} {path} does not exist; check the path")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # the file references classes/functions: code, not data
            raise WeightsError(
                f"{what} {path} contains pickled code, which mocodec refuses to execute; "
                "re-save it as a plain state dict (torch.save(model.state_dict(), ...))"
            ) from None
        raise WeightsError(f"{what} {path} is not a readable torch file (damaged or another format); re-export it") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{what} {path} is not a readable torch file ({first[:120]}); re-export it") from None
    if not isinstance(obj, dict):
        raise WeightsError(f"{what} {path} holds a {type(obj).__name__}, not a state dict")
    return obj


def load_state_dict_file(path: str | os.PathLike, *, what: str = "weights") -> dict[str, Any]:
    """A state dict from ``.safetensors`` or a torch file (plain, or wrapped as ``{"state_dict"|"model": ...}``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise WeightsError(f"{what} {path} does not exist; check the path")
        try:
            return safetensors.torch.load_file(str(path))
        except (safetensors.SafetensorError, OSError) as exc:
            raise WeightsError(f"{what} {path} is not a readable safetensors file ({str(exc)[:120]}); re-export it") from None
    obj = load_checkpoint(path, what=what)
    for key in ("state_dict", "model"):  # training scripts wrap the weights with optimiser state etc.
        if isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def looks_like_path(text: str) -> bool:
    """Whether ``text`` names a file rather than a pretrained tag (a path separator or a weights suffix)."""
    return os.sep in text or "/" in text or Path(text).suffix in (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")


# --------------------------------------------------------------------------- Hugging Face hub files


def _unreachable(url: str) -> str | None:
    """Why ``url`` cannot be fetched now, found cheaply; None when a download may work.

    The Hugging Face client retries an unresolvable host for about a minute before failing,
    so an offline machine is recognised up front: ``HF_HUB_OFFLINE`` is set, or the host's name
    does not resolve (skipped behind a proxy, which may resolve names itself).
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on") and "huggingface.co" in url:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = urlparse(url).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return f"cannot resolve {host}: offline?"
    return None


def hf_hub_file(repo: str, filenames: tuple[str, ...], *, what: str, alternative: str) -> Path:
    """The first of ``filenames`` found in hub repo ``repo``: from the local cache, else downloaded.

    Offline (see :func:`_unreachable`) only the cache is consulted, so the failure is immediate;
    it names the files, the repo page and the flag that takes a local file.
    """
    from huggingface_hub import hf_hub_download  # ~0.1 s of imports that listing names or coding a JPEG must not pay

    url = f"https://huggingface.co/{repo}"
    offline = _unreachable(url)
    failure = offline
    for local_only in (True,) if offline else (True, False):  # the cache first, then the network
        for filename in filenames:
            try:
                return Path(hf_hub_download(repo, filename, local_files_only=local_only))
            except Exception as exc:  # not cached / not published / network: try the next source
                failure = offline or type(exc).__name__
    raise WeightsError(
        f"cannot download {what} ({failure}); download {' or '.join(filenames)} from {url} and pass the file as {alternative}"
    )
