"""Codec registry: learned (CompressAI family, MLIC++) and classic (JPEG/WebP/AVIF) codecs.

``create_codec(name, **kw)`` builds a codec with random or default weights, as timm's
``create_model``; ``load_codec`` also resolves ``pretrained=True`` or a checkpoint file.
Importing this package does not import CompressAI: the learned codecs' entries are
declared in :mod:`mocodec.codecs.zoo`, which imports their architectures when one is built.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from torch import Tensor, nn

from mocodec.codecs import classic, zoo  # noqa: F401  (register the codecs)
from mocodec.codecs.base import NO_WEIGHTS_ID
from mocodec.codecs.registry import CODECS, register_codec
from mocodec.errors import ConfigError, WeightsError
from mocodec.registry import canonical_name
from mocodec.utils.seeding import portable_init
from mocodec.weights import fetch_url, file_digest, load_checkpoint

__all__ = [
    "CODECS",
    "register_codec",
    "create_codec",
    "load_codec",
    "list_codecs",
    "is_classic",
    "codec_state",
    "quality_range",
    "default_quality",
    "sweep_qualities",
]

# Key under which mocodec checkpoints (exports and Lightning checkpoints) record the architecture.
CODEC_KEY = "mocodec_codec"


def list_codecs() -> list[str]:
    return CODECS.names()


def is_classic(name: str) -> bool:
    return bool(CODECS.meta(name).get("classic", False))


def quality_range(name: str) -> range:
    """The qualities codec ``name`` has (declared by its registry entry)."""
    return CODECS.meta(name)["qualities"]


def default_quality(name: str) -> int:
    """The quality codec ``name`` is built at when none is given (its factory's default)."""
    return int(inspect.signature(CODECS.get(name)).parameters["quality"].default)


def sweep_qualities(name: str, points: int | None = None) -> list[int]:
    """A sweep's default rate points for ``name``: its declared sweep (classic codecs) or all its qualities,
    or ``points`` of them spread evenly from the lowest to the highest."""
    meta = CODECS.meta(name)
    qualities = list(meta.get("sweep", quality_range(name)))
    if points is None or points >= len(qualities):
        return qualities
    return sorted({qualities[round(i * (len(qualities) - 1) / (points - 1))] for i in range(points)})


def create_codec(name: str, **kwargs: Any) -> nn.Module:
    """Build codec ``name`` (hyphens or underscores) with fresh weights."""
    return CODECS.create(name, **kwargs)


def codec_state(codec: nn.Module, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """What :func:`load_codec` needs to rebuild ``codec``: its registry name, architecture kwargs and weights."""
    return {
        CODEC_KEY: {"name": codec.codec_name, "quality": codec.quality, "kwargs": dict(kwargs or {})},
        "state_dict": codec.state_dict(),
    }


def _strip_prefixes(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Accept DataParallel (``module.``) and Lightning (``codec.``) key prefixes."""
    for prefix in ("module.", "codec."):
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    # A Lightning checkpoint also holds the distortion modules' entries: keep the codec's only.
    if any(k.startswith("codec.") for k in state_dict):
        state_dict = {k[len("codec.") :]: v for k, v in state_dict.items() if k.startswith("codec.")}
    return state_dict


def _load_weights(codec_name: str, quality: int, path: str | os.PathLike, extra: dict[str, Any]) -> nn.Module:
    ckpt = load_checkpoint(path)
    recorded = ckpt.get(CODEC_KEY)
    kwargs = dict(extra)
    if isinstance(recorded, dict):
        if canonical_name(recorded.get("name", codec_name)) != canonical_name(codec_name):
            raise WeightsError(f"checkpoint {path} holds a {recorded['name']} codec, not {codec_name}; pass --codec {recorded['name']}")
        quality = int(recorded.get("quality", quality))
        kwargs.update(recorded.get("kwargs", {}))
    state_dict = ckpt.get("state_dict", ckpt)
    if not isinstance(state_dict, dict) or not all(isinstance(v, Tensor) for v in state_dict.values()):
        raise WeightsError(f"checkpoint {path} has no state dict of tensors; give a CompressAI or mocodec checkpoint")
    state_dict = _strip_prefixes(state_dict)
    convert = CODECS.meta(codec_name).get("convert_state_dict")
    if convert is not None:
        state_dict = convert(state_dict)
    codec = create_codec(codec_name, quality=quality, **kwargs)
    infer = getattr(codec, "infer_kwargs", None)
    if infer is not None and not isinstance(recorded, dict):
        try:
            inferred = infer(state_dict)
        except (KeyError, IndexError):
            raise WeightsError(
                f"checkpoint {path} does not match the {codec_name} architecture (missing layers); pass the --codec it was trained as"
            ) from None
        codec = create_codec(codec_name, quality=quality, **{**kwargs, **inferred})
    try:
        codec.load_state_dict(state_dict)
    except (RuntimeError, KeyError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise WeightsError(
            f"checkpoint {path} does not match {codec_name} quality {quality} ({detail}); pass the --codec/--quality it was trained as"
        ) from None
    codec.set_identity(codec.codec_name, quality, file_digest(path))
    return codec


def _pretrained_file(name: str, quality: int, metric: str) -> os.PathLike:
    """The local file of the pretrained weights: shipped with mocodec (verified), or published and downloaded once."""
    meta = CODECS.meta(name)
    create_codec(name, quality=quality)  # validates the quality before any file is looked up or downloaded
    if meta.get("pretrained_file") is not None:
        return meta["pretrained_file"](canonical_name(name), quality)
    url_of = meta.get("pretrained_url")
    if url_of is None:
        raise ConfigError(f"no published weights are known for {name}; pass --checkpoint PATH")
    return fetch_url(url_of(canonical_name(name), quality, metric), what=f"pretrained {canonical_name(name)} quality {quality} ({metric})")


def load_codec(
    name: str,
    quality: int = 3,
    *,
    checkpoint: str | os.PathLike | None = None,
    pretrained: bool = False,
    metric: str = "mse",
    arithmetic: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A codec ready to code, in eval mode: fresh, pretrained (shipped or published weights) or from ``checkpoint``.

    ``checkpoint`` accepts CompressAI state dicts (its zoo files and its training scripts'
    ``{"state_dict": ...}`` files), mocodec exports and mocodec Lightning checkpoints.
    ``arithmetic``: ``exact`` or ``float`` (:mod:`mocodec.codecs.arithmetic`); None: the codec's
    default (exact where it has it).
    """
    codec = _load(name, quality, checkpoint, pretrained, metric, kwargs)
    codec.set_arithmetic(arithmetic)
    return codec


def _load(
    name: str, quality: int, checkpoint: str | os.PathLike | None, pretrained: bool, metric: str, kwargs: dict[str, Any]
) -> nn.Module:
    CODECS.get(name)  # unknown names fail first, with the list of known ones
    quality = int(quality)
    if checkpoint is not None and pretrained:
        raise ConfigError("give either --checkpoint or --pretrained, not both")
    if is_classic(name):
        if checkpoint is not None or pretrained:
            raise ConfigError(f"{name} is a classic codec: it takes no --checkpoint or --pretrained")
        return create_codec(name, quality=quality).eval()
    if pretrained:
        checkpoint = _pretrained_file(name, quality, metric)
    if checkpoint is not None:
        return _load_weights(name, quality, checkpoint, kwargs).eval()
    # Without weights, initialise from a fixed seed, portably: files then decode in any process
    # on any CPU (an entropy decoder with other weights than the encoder's cannot decode them).
    codec = portable_init(lambda: create_codec(name, quality=quality, **kwargs))
    codec.weights_id = NO_WEIGHTS_ID
    return codec.eval()
