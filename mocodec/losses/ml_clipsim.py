"""ML-CLIPSim: multi-layer CLIP similarity, a machine-oriented full-reference metric and loss.

For a reference ``x``, a distorted ``x̂`` and a frozen CLIP image encoder ``E`` in eval mode::

    ML-CLIPSim(x, x̂) = Σ_{l ∈ L} w_l · mean_i cos(T_l(x)_i, T_l(x̂)_i)  +  w_g · cos(g(x), g(x̂))

``T_l`` are the patch tokens after transformer block ``l`` (1-based; class tokens excluded
unless ``include_cls``), ``g`` the model's projected image embedding, and the weights are
normalised to sum to 1, so identical images score 1. The loss is ``1 − ML-CLIPSim``.
The aggregation, preprocessing and freezing live in
:class:`~mocodec.losses.feature_similarity.MultiLayerFeatureSimilarity`; this module only
adapts the encoders:

- open_clip models (default ``ViT-B-32`` / ``openai``; any name of ``open_clip.list_models()``
  with a ViT image tower, including timm-tower models such as SigLIP): tokens and embedding
  from ``visual.forward_intermediates`` in one pass;
- timm ViTs, named ``"timm:<architecture>"`` (e.g. ``timm:vit_base_patch16_224`` with
  ``pretrained="augreg2_in21k_ft_in1k"``): tokens from timm's ``forward_intermediates``, the
  global embedding is the pooled pre-logits feature (timm's ``forward_head(pre_logits=True)``).

``pretrained`` is a tag of the model's pretrained table (open_clip's, or timm's ``name.tag``),
a local weights file, or None for random init. open_clip tags are resolved here
(:func:`open_clip_weights`), timm tags by :func:`mocodec.backbones.timm_pretrained_weights`;
offline, the error names the file to download and the flag that takes it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from mocodec.backbones import import_timm, timm_pretrained_weights
from mocodec.errors import ConfigError, WeightsError
from mocodec.losses.feature_similarity import FeatureEncoder, LayerFeatures, LayerSpec, MultiLayerFeatureSimilarity
from mocodec.losses.registry import register_distortion
from mocodec.weights import PRETRAINED_FILE_HINT, fetch_url, hf_hub_file, looks_like_path

TIMM_PREFIX = "timm:"
WHAT = "ml-clipsim weights"

# A 12-block open_clip ViT small enough to build and run in milliseconds (tests, config sweeps).
TINY_OPEN_CLIP_CFG: dict[str, Any] = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 16, "layers": 12, "head_width": 8},
    "text_cfg": {"context_length": 4, "vocab_size": 16, "width": 8, "heads": 1, "layers": 1},
}


def import_open_clip() -> ModuleType:
    """open_clip, imported when the first ML-CLIPSim term is built: its import takes over a second, which listing names must not pay."""
    import open_clip

    return open_clip


def open_clip_weights(model: str, pretrained: str, *, what: str, alternative: str = PRETRAINED_FILE_HINT) -> tuple[Path, dict[str, Any]]:
    """Local weights file of open_clip ``model`` for ``pretrained`` (a tag of open_clip's table or a file).

    Also returns the preprocessing/architecture facts that belong to the weights (``mean``,
    ``std``, ``interpolation``, ``quick_gelu``): the tag's entry, or for a local file the
    statistics every tag of ``model`` shares (give the model name that matches the file, e.g.
    ``ViT-B-32-quickgelu`` for OpenAI's original weights).
    """
    open_clip = import_open_clip()
    keys = ("mean", "std", "interpolation", "quick_gelu")
    path = Path(pretrained).expanduser()
    if path.is_file():
        tag_cfgs = [open_clip.get_pretrained_cfg(model, t) for t in open_clip.list_pretrained_tags_by_model(model)]
        shared = {
            k: tag_cfgs[0][k]
            for k in ("mean", "std", "interpolation")
            if tag_cfgs and all(c.get(k) == tag_cfgs[0].get(k) for c in tag_cfgs)
        }
        return path, shared
    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        if looks_like_path(pretrained):
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


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _interpolation(name: str | None) -> str:
    return name if name in ("bilinear", "bicubic") else "bicubic"


class OpenClipFeatures(FeatureEncoder):
    """Adapter for an open_clip image tower: patch tokens per block and the projected embedding."""

    has_extra_tokens = True

    def __init__(self, visual: nn.Module, preprocess_cfg: dict[str, Any]) -> None:
        super().__init__()
        self.visual = visual
        if hasattr(visual, "transformer"):  # open_clip's own VisionTransformer
            self.num_layers = visual.transformer.layers
        elif hasattr(getattr(visual, "trunk", None), "blocks"):  # open_clip's TimmModel tower (SigLIP, ...)
            self.num_layers = len(visual.trunk.blocks)
        else:
            raise ConfigError(f"ml-clipsim needs a ViT image tower, got {type(visual).__name__}; use ml-featsim for CNNs")
        self.input_size = _pair(preprocess_cfg["size"])
        self.mean, self.std = tuple(preprocess_cfg["mean"]), tuple(preprocess_cfg["std"])
        self.interpolation = _interpolation(preprocess_cfg.get("interpolation"))

    def forward(self, x: Tensor, layers: Sequence[int], embedding: bool, extra_tokens: bool = False) -> LayerFeatures:
        if not layers:  # the global term alone: the plain forward
            return LayerFeatures([], self.visual(x))
        out = self.visual.forward_intermediates(
            x,
            indices=list(layers),
            stop_early=not embedding,
            intermediates_only=not embedding,
            output_fmt="NLC",
            output_extra_tokens=extra_tokens,
        )
        tokens = out["image_intermediates"]
        if extra_tokens:
            tokens = [torch.cat([prefix, t], 1) for prefix, t in zip(out["image_intermediates_prefix"], tokens)]
        return LayerFeatures(tokens, out.get("image_features"))


class TimmViTFeatures(FeatureEncoder):
    """Adapter for a timm ViT: patch tokens per block; embedding = pooled pre-logits features."""

    has_extra_tokens = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not (hasattr(model, "blocks") and hasattr(model, "patch_embed") and hasattr(model, "forward_intermediates")):
            raise ConfigError(f"ml-clipsim's timm backend takes ViTs, got {type(model).__name__}; use ml-featsim for CNNs")
        data = import_timm().data.resolve_model_data_config(model)
        self.model = model
        self.num_layers = len(model.blocks)
        self.input_size = _pair(model.patch_embed.img_size)  # the built size, which kwargs may have changed
        self.mean, self.std = tuple(data["mean"]), tuple(data["std"])
        self.interpolation = _interpolation(data.get("interpolation"))

    def forward(self, x: Tensor, layers: Sequence[int], embedding: bool, extra_tokens: bool = False) -> LayerFeatures:
        if not layers:  # the global term alone: the plain forward
            return LayerFeatures([], self.model.forward_head(self.model.forward_features(x), pre_logits=True))
        out = self.model.forward_intermediates(
            x,
            indices=list(layers),
            return_prefix_tokens=extra_tokens,
            stop_early=not embedding,
            intermediates_only=not embedding,
            output_fmt="NLC",
        )
        final, tokens = out if embedding else (None, out)
        if extra_tokens:
            tokens = [torch.cat([prefix, t], 1) for t, prefix in tokens]
        return LayerFeatures(tokens, self.model.forward_head(final, pre_logits=True) if embedding else None)


def open_clip_encoder(model: str, pretrained: str | Path | None, model_cfg: dict[str, Any] | None = None) -> OpenClipFeatures:
    """The image tower of open_clip ``model`` with ``pretrained`` weights (tag, file, or None)."""
    open_clip = import_open_clip()
    if ":" not in model and open_clip.get_model_config(model) is None:
        raise ConfigError(
            f"unknown open_clip model '{model}'; e.g. ViT-B-32, ViT-B-16, ViT-L-14, ViT-B-16-SigLIP "
            "(open_clip.list_models() lists all), or timm:<name> for a timm ViT"
        )
    checkpoint, facts = (None, {}) if pretrained is None else open_clip_weights(model, str(pretrained), what=WHAT)
    try:
        clip = open_clip.create_model(
            model,
            pretrained=str(checkpoint) if checkpoint else None,
            force_quick_gelu=bool(facts.get("quick_gelu", False)),  # OpenAI-trained weights need QuickGELU
            force_preprocess_cfg={k: facts[k] for k in ("mean", "std", "interpolation") if k in facts},
            **(model_cfg or {}),
        )
    except (RuntimeError, KeyError, ValueError) as exc:
        if checkpoint is None:
            raise ConfigError(f"cannot build open_clip model {model} with model_cfg {model_cfg} ({_first_line(exc)})") from None
        raise WeightsError(f"{checkpoint} does not fit open_clip model {model} ({_first_line(exc)})") from None
    return OpenClipFeatures(clip.visual, open_clip.get_model_preprocess_cfg(clip))


def timm_encoder(name: str, pretrained: str | Path | None, model_cfg: dict[str, Any] | None = None) -> TimmViTFeatures:
    """timm ViT ``name`` with ``pretrained`` weights (timm tag, file, or None); ``model_cfg`` = create_model kwargs."""
    timm = import_timm()
    if not timm.is_model(name):
        raise ConfigError(f"unknown timm model '{name}'; timm.list_models('vit_*') lists the ViTs")
    kwargs = dict(model_cfg or {})
    if pretrained is None:
        return TimmViTFeatures(timm.create_model(name, pretrained=False, **kwargs))
    local_file = Path(str(pretrained)).expanduser().is_file()
    weights = timm_pretrained_weights(name, str(pretrained), what=WHAT)
    tagged = name if local_file else f"{name}.{pretrained}"  # a tag brings its cfg (classes, mean/std) too
    try:
        model = timm.create_model(tagged, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, **kwargs)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise WeightsError(f"{weights} does not fit timm model {name} ({_first_line(exc)})") from None
    return TimmViTFeatures(model)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] or type(exc).__name__


def clip_encoder(model: str, pretrained: str | Path | None, model_cfg: dict[str, Any] | None = None) -> FeatureEncoder:
    """``"timm:<name>"`` -> a timm ViT; any other name -> an open_clip model."""
    if model.startswith(TIMM_PREFIX):
        return timm_encoder(model[len(TIMM_PREFIX) :], pretrained, model_cfg)
    return open_clip_encoder(model, pretrained, model_cfg)


@register_distortion(
    name="ml-clipsim",
    test_kwargs={"model": "ViT-B-32", "pretrained": None, "model_cfg": TINY_OPEN_CLIP_CFG},
)
def ml_clipsim(
    model: str = "ViT-B-32",
    pretrained: str | Path | None = "openai",
    layers: LayerSpec = (3, 6, 9, 12),
    layer_weights: Sequence[float] | None = None,
    global_weight: float | None = None,
    include_cls: bool = False,
    resize_mode: str = "resize",
    model_cfg: dict[str, Any] | None = None,
) -> MultiLayerFeatureSimilarity:
    """ML-CLIPSim on a frozen CLIP image encoder (see the module docstring for the equation).

    Args:
        model: open_clip model name, or ``"timm:<name>"`` for a timm ViT.
        pretrained: tag (open_clip's table / timm's tags), local weights file, or None (random init).
        layers: 1-based block numbers (``3, 6, 9, 12``: outputs of the 3rd ... 12th block),
            negatives from the end, or ``"all"``.
        layer_weights / global_weight: default 1 each; normalised to sum to 1 together.
        include_cls: also compare the class token(s) of each listed block.
        resize_mode: ``"resize"`` (antialiased, to the encoder's size) or ``"tiles"`` (average
            over crops of the encoder's size, so high-resolution detail counts); ``"auto"`` is
            ``"resize"`` here (a ViT takes one size), so a recipe's ``ml-featsim`` term with
            ``resize_mode: auto`` is an ML-CLIPSim term by renaming it.
        model_cfg: overrides of the named architecture: open_clip config keys (``embed_dim``,
            ``vision_cfg``, ``text_cfg``, ...) or, for ``timm:``, ``timm.create_model`` kwargs.
    """
    encoder = clip_encoder(model, pretrained, model_cfg)
    return MultiLayerFeatureSimilarity(encoder, layers, layer_weights, global_weight, include_cls, resize_mode, score_name="ml-clipsim")
