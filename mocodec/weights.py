"""The one place that turns a pretrained name, URL or local file into weights.

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

import torch

from mocodec.errors import ConfigError, WeightsError


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
            f"cannot download {what} from {url} ({type(exc).__name__}); "
            f"place that file at {target}, or pass {alternative}"
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


# --------------------------------------------------------------------------- classifiers (timm, torchvision)


def load_state_dict_file(path: str | os.PathLike, *, what: str = "weights") -> dict[str, Any]:
    """A state dict from ``.safetensors`` or a torch file (plain, or wrapped as ``{"state_dict"|"model": ...}``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise WeightsError(f"{what} {path} does not exist; check the path")
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise WeightsError(f"{what} {path} is not a readable safetensors file ({str(exc)[:120]}); re-export it") from None
    obj = load_checkpoint(path, what=what)
    for key in ("state_dict", "model"):  # training scripts wrap the weights with optimiser state etc.
        if isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def timm_weights_file(model_name: str) -> Path:
    """The published weights of timm model ``model_name`` (``resnet50`` or ``resnet50.a1_in1k``), cached."""
    import timm

    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise WeightsError(f"timm publishes no weights for {model_name}; pass --weights PATH")
    return timm_pretrained_weights(cfg.architecture, cfg.tag, what="weights of timm model", alternative="--weights PATH")


def torchvision_weights_file(model_name: str) -> Path:
    """The DEFAULT ImageNet weights of torchvision model ``model_name`` (cached under ``$TORCH_HOME``)."""
    import torchvision

    weights = torchvision.models.get_model_weights(model_name).DEFAULT
    return fetch_url(weights.url, what=f"torchvision {model_name} weights", alternative="--weights PATH")


# --------------------------------------------------------------------------- detectors (ultralytics), VLMs (transformers)


def ultralytics_weights_file(name: str) -> Path:
    """The checkpoint of a published ultralytics model (``yolo11n``, ``yolov8s.pt``).

    Looked for in the current folder, then in ultralytics' weights folder (``yolo settings``),
    else downloaded there once by ultralytics; offline: a WeightsError naming the file and the folder.
    """
    from mocodec.tasks.detectors import import_ultralytics

    import_ultralytics()  # undoes its Image.open patch before anything else runs
    from ultralytics.utils import SETTINGS
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES, attempt_download_asset

    file = name if name.endswith(".pt") else f"{name}.pt"
    target = Path(SETTINGS["weights_dir"]) / file
    if not (Path(file).is_file() or target.is_file() or file in GITHUB_ASSETS_NAMES):
        examples = sorted(n.removesuffix(".pt") for n in GITHUB_ASSETS_NAMES if n.startswith(("yolo11", "yolov8")) and "-" not in n)
        raise WeightsError(f"ultralytics publishes no model '{name}'; detectors it does: {', '.join(examples)}, ...; or pass --weights PATH")
    try:
        path = Path(attempt_download_asset(file))
    except Exception as exc:  # ConnectionError offline; other network failures mean the same here
        raise WeightsError(f"cannot download {file} ({type(exc).__name__}; offline?); place it at {target}, or pass --weights PATH") from None
    if not path.is_file():
        raise WeightsError(f"ultralytics did not fetch {file}; place it at {target}, or pass --weights PATH")
    return path


def huggingface_snapshot(name: str, *, what: str = "model", alternative: str = "--model DIR") -> Path:
    """A local transformers snapshot folder for a hub repo id (``OpenGVLab/InternVL3-1B-hf``) or a folder.

    The hub cache is tried first, so an offline machine with the files cached never waits
    on the network; otherwise the snapshot is downloaded once (weights, configs, tokenizer).
    """
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise WeightsError(f"{what} folder {folder} has no config.json; give a folder written by save_pretrained or `hf download`")
        return folder
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise WeightsError(f"{what} '{name}' is neither a folder nor a hub repo id (owner/name); check the path")
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]  # no remote code: never executed here
    for local_only in (True, False):
        try:
            return Path(snapshot_download(name, allow_patterns=patterns, local_files_only=local_only))
        except Exception as exc:  # not cached / no network / unknown repo: say what to place where
            error = type(exc).__name__
    from huggingface_hub.constants import HF_HUB_CACHE

    cached = Path(HF_HUB_CACHE) / f"models--{name.replace('/', '--')}"
    raise WeightsError(
        f"cannot download {what} '{name}' from the Hugging Face hub ({error}); run `hf download {name}` where the hub "
        f"is reachable and copy the cache to {cached}, or pass the snapshot folder as {alternative}"
    )


# --------------------------------------------------------------------------- hub files, open_clip and timm tags

PRETRAINED_FILE_HINT = "pretrained=FILE (CLI: --pretrained FILE)"


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
    from huggingface_hub import hf_hub_download

    url = f"https://huggingface.co/{repo}"
    offline = _unreachable(url)
    failure = offline
    for local_only in (True,) if offline else (True, False):  # the cache first, then the network
        for filename in filenames:
            try:
                return Path(hf_hub_download(repo, filename, local_files_only=local_only))
            except Exception as exc:  # not cached / not published / network: try the next source
                failure = offline or type(exc).__name__
    raise WeightsError(f"cannot download {what} ({failure}); download {' or '.join(filenames)} from {url} and pass the file as {alternative}")


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or Path(text).suffix in (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")


def open_clip_weights(model: str, pretrained: str, *, what: str, alternative: str = PRETRAINED_FILE_HINT) -> tuple[Path, dict[str, Any]]:
    """Local weights file of open_clip ``model`` for ``pretrained`` (a tag of open_clip's table or a file).

    Also returns the preprocessing/architecture facts that belong to the weights (``mean``,
    ``std``, ``interpolation``, ``quick_gelu``): the tag's entry, or for a local file the
    statistics every tag of ``model`` shares (give the model name that matches the file, e.g.
    ``ViT-B-32-quickgelu`` for OpenAI's original weights).
    """
    import open_clip

    keys = ("mean", "std", "interpolation", "quick_gelu")
    path = Path(pretrained).expanduser()
    if path.is_file():
        tag_cfgs = [open_clip.get_pretrained_cfg(model, t) for t in open_clip.list_pretrained_tags_by_model(model)]
        shared = {k: tag_cfgs[0][k] for k in ("mean", "std", "interpolation") if tag_cfgs and all(c.get(k) == tag_cfgs[0].get(k) for c in tag_cfgs)}
        return path, shared
    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        if _looks_like_path(pretrained):
            raise WeightsError(f"{what} file {path} does not exist; check the path")
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none (pass a local file)"
        raise ConfigError(f"unknown pretrained tag '{pretrained}' for open_clip model {model}; known tags: {tags}")
    facts = {k: cfg[k] for k in keys if k in cfg}
    if cfg.get("hf_hub"):
        repo, filename = cfg["hf_hub"].rstrip("/"), None
        if not cfg["hf_hub"].endswith("/"):  # 'org/repo/file.ext' names the file; 'org/repo/' means the default
            repo, filename = os.path.split(cfg["hf_hub"])
        names = (filename,) if filename else ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
        return hf_hub_file(repo, names, what=f"{what} {model}/{pretrained}", alternative=alternative), facts
    return fetch_url(cfg["url"], what=f"{what} {model}/{pretrained}", alternative=alternative), facts


def timm_pretrained_weights(model: str, pretrained: str, *, what: str, alternative: str = PRETRAINED_FILE_HINT) -> Path:
    """Local weights file of timm ``model`` for ``pretrained``: a timm tag (``model.tag``) or a file."""
    import timm

    path = Path(pretrained).expanduser()
    if path.is_file():
        return path
    published = timm.list_pretrained(f"{model}.*")
    if f"{model}.{pretrained}" not in published:
        if _looks_like_path(pretrained):
            raise WeightsError(f"{what} file {path} does not exist; check the path")
        tags = ", ".join(name.partition(".")[2] for name in published) or "none (pass a local file)"
        raise ConfigError(f"unknown pretrained tag '{pretrained}' for timm model {model}; known tags: {tags}")
    cfg = timm.models.get_pretrained_cfg(f"{model}.{pretrained}")
    if cfg.hf_hub_id:
        names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else ("model.safetensors", "pytorch_model.bin")
        return hf_hub_file(cfg.hf_hub_id, names, what=f"{what} {model}.{pretrained}", alternative=alternative)
    return fetch_url(cfg.url, what=f"{what} {model}.{pretrained}", alternative=alternative)
