"""Multi-layer feature similarity: the aggregation behind ML-CLIPSim, for any frozen encoder.

For a reference ``x`` and a distorted ``x_hat``, a frozen encoder ``E`` in eval mode, chosen
layers ``L`` with token tensors ``T_l(·)`` and a global embedding ``g(·)``::

    S(x, x_hat) = Σ_{l ∈ L} w_l · mean_i cos(T_l(x)_i, T_l(x_hat)_i)  +  w_g · cos(g(x), g(x_hat))

with ``w_l, w_g >= 0`` normalised to sum to 1, so identical images score 1; the loss is ``1 − S``.
Token ``i`` of one image is compared with token ``i`` of the other (same position).

The encoder is seen through a small adapter, :class:`FeatureEncoder`, which turns a
normalised image batch into "one ``N × tokens × channels`` tensor per requested layer plus
one ``N × E`` embedding". :mod:`mocodec.losses.ml_clipsim` provides adapters for open_clip and
timm ViTs (tokens = patch tokens); :class:`CNNFeatures` here serves CNNs (tokens = spatial
positions of a stage's feature map, embedding = the globally average-pooled pre-logits features).
The ``ml-featsim`` entry runs it on the real, offline EfficientNet-Lite0.

Preprocessing is differentiable and matches the encoder: images in [0, 1] are brought to the
encoder's input size (``resize_mode``) and normalised with its mean/std.

- ``"resize"``: the whole image is resized to the input size (antialiased; the encoder's
  interpolation), so everything in the picture counts, at the price of the aspect ratio.
- ``"tiles"``: the image is cut into crops of the input size, each crop is scored and the
  crop scores are averaged, so high-resolution detail counts. Along each side there are
  ``n = ⌈side / size⌉`` crops spread evenly from edge to edge: they do not overlap when the
  side is a multiple of the size and overlap by less than one crop otherwise, so every pixel
  is covered. An image smaller than one crop is first enlarged (keeping its aspect ratio).
- ``"none"``: the image goes in as it is; only for encoders that accept any size (CNNs).
- ``"auto"``: ``"none"`` for encoders that accept any size, ``"resize"`` for the others, so one
  term's settings serve a CNN and a ViT alike (a recipe's ``ml-featsim`` term becomes the
  ML-CLIPSim one by its name alone).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mocodec.backbones import efficientnet_lite, efficientnet_lite_spec, freeze
from mocodec.errors import ConfigError
from mocodec.losses.base import Distortion, check_pair
from mocodec.losses.registry import register_distortion

LayerSpec = int | str | Sequence[int]
RESIZE_MODES = ("resize", "tiles", "none", "auto")


class LayerFeatures(NamedTuple):
    """What an adapter returns for a batch: per requested layer ``N × tokens × channels``, and ``N × E``."""

    tokens: list[Tensor]
    embedding: Tensor | None


class FeatureEncoder(nn.Module):
    """Adapter contract: a frozen network seen as per-layer token tensors plus a global embedding.

    Attributes describe the network's expected input: ``input_size`` (H, W), ``mean``/``std``
    (per channel, for [0, 1] images), ``interpolation`` for resizing, and ``any_size`` (True when
    the network accepts inputs of other sizes). ``num_layers`` is how many layers can be picked.
    """

    num_layers: int
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    any_size: bool = False
    has_extra_tokens: bool = False  # class/register tokens that ``extra_tokens=True`` appends

    def forward(self, x: Tensor, layers: Sequence[int], embedding: bool, extra_tokens: bool = False) -> LayerFeatures:
        """Features of normalised images ``x`` for 0-based, ascending ``layers`` (possibly none).

        ``embedding=False`` lets the adapter skip everything after the last requested layer.
        """
        raise NotImplementedError


class FrozenNetworkDistortion(Distortion):
    """A distortion computed by a frozen pretrained network that is *not* part of the module's state.

    The network is kept outside the registered submodules, so a parent (a codec's
    LightningModule) never sees it: not in ``parameters()`` (optimisers), not in ``state_dict()``
    (checkpoints store the term by name and tag and rebuild it; loading with ``strict=True``
    works without encoder keys), and never switched to training mode by ``parent.train()``.
    It still follows device and dtype moves (``.to()``, ``.cuda()``, ``.double()``).
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        # Bypass nn.Module.__setattr__, which would register the network as a submodule.
        self.__dict__["network"] = freeze(network)

    def _apply(self, fn, recurse: bool = True):
        self.__dict__["network"]._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return f"network={type(self.network).__name__} (frozen, not in state_dict)"


def token_cosine(a: Tensor, b: Tensor, eps: float = 1e-12) -> Tensor:
    """Cosine along the last dimension (in float32 or wider) of the vectors extended by one coordinate √eps.

    For non-zero vectors this is the ordinary cosine to within ~eps/|a|²; identical vectors give
    exactly 1 and two all-zero vectors (possible after ReLU) give 1 rather than 0/0.
    """
    dtype = torch.promote_types(a.dtype, torch.float32)  # half/bfloat16 features (autocast) lack the precision
    a, b = a.to(dtype), b.to(dtype)
    dot = (a * b).sum(-1) + eps
    return dot / ((a.pow(2).sum(-1) + eps).sqrt() * (b.pow(2).sum(-1) + eps).sqrt())


def resolve_layers(layers: LayerSpec, num_layers: int) -> list[int]:
    """1-based layer numbers (negatives count from the end, ``"all"``) -> 1-based positive numbers.

    Also accepts a comma-separated string such as ``"3,6,9,12"`` (the CLI's form).
    """
    if isinstance(layers, str):
        if layers.strip().lower() == "all":
            return list(range(1, num_layers + 1))
        try:
            layers = [int(p) for p in layers.split(",") if p.strip()]
        except ValueError:
            raise ConfigError(f"cannot read layers '{layers}'; write block numbers such as 3,6,9,12 or 'all'") from None
    elif isinstance(layers, int):
        layers = [layers]
    out = []
    for n in layers:
        if isinstance(n, bool) or not isinstance(n, int) or n == 0 or not -num_layers <= n <= num_layers:
            raise ConfigError(
                f"layer {n!r} does not exist: the encoder has {num_layers} layers "
                f"(1-based: 1..{num_layers}, or -1..-{num_layers} from the end)"
            )
        out.append(n if n > 0 else num_layers + 1 + n)
    if len(set(out)) != len(out):
        raise ConfigError(f"layers {list(layers)} name a layer twice")
    return out


def normalised_weights(num_layers: int, layer_weights: Sequence[float] | None, global_weight: float | None) -> list[float]:
    """``[w_l ..., w_g]`` summing to 1; unset weights are 1 (uniform over the layers and the global term)."""
    raw_layers = [1.0] * num_layers if layer_weights is None else [float(w) for w in layer_weights]
    if len(raw_layers) != num_layers:
        raise ConfigError(f"give one weight per layer: {num_layers} layers but {len(raw_layers)} layer weights")
    raw = [*raw_layers, 1.0 if global_weight is None else float(global_weight)]
    if any(not math.isfinite(w) or w < 0 for w in raw):
        raise ConfigError(f"layer and global weights must be finite numbers >= 0, got {raw}")
    total = sum(raw)
    if total <= 0:
        raise ConfigError("at least one layer weight or the global weight must be > 0")
    return [w / total for w in raw]


def tile_starts(side: int, size: int) -> list[int]:
    """Start offsets of ``⌈side / size⌉`` crops of ``size`` spread evenly over ``side`` (side >= size)."""
    n = math.ceil(side / size)
    if n == 1:
        return [0]
    return [round(i * (side - size) / (n - 1)) for i in range(n)]


class MultiLayerFeatureSimilarity(FrozenNetworkDistortion):
    """``S = Σ_l w_l · mean_i cos(T_l(x)_i, T_l(x̂)_i) + w_g · cos(g(x), g(x̂))`` on a frozen encoder.

    Args:
        encoder: the adapter (:class:`FeatureEncoder`) around the frozen network.
        layers: 1-based layer numbers, negatives from the end, or ``"all"``; components are
            reported in ascending layer order (weights follow their layers).
        layer_weights: one weight per listed layer; default 1 each.
        global_weight: weight of the global-embedding term; default 1. All weights are then
            normalised to sum to 1 (so ``layer_weights=[0, 0, 0, 0]`` is the global term alone).
        include_cls: also compare the class/register tokens (ViTs), as extra tokens of each layer.
        resize_mode: ``"resize"``, ``"tiles"``, ``"none"`` or ``"auto"`` (see the module docstring).
        score_name: the metric's name in reports (``ml-clipsim``, ``ml-featsim``).

    ``score(x_hat, x)`` is per image, higher is better, 1 for identical images; ``forward`` is
    the batch mean of ``1 − score``. Gradients flow to ``x_hat`` only: the reference features
    are computed under ``no_grad`` and the encoder's parameters never require gradients.
    """

    higher_is_better = True

    def __init__(
        self,
        encoder: FeatureEncoder,
        layers: LayerSpec = "all",
        layer_weights: Sequence[float] | None = None,
        global_weight: float | None = None,
        include_cls: bool = False,
        resize_mode: str = "resize",
        score_name: str = "feature-similarity",
    ) -> None:
        super().__init__(encoder)
        self.score_name = score_name
        if resize_mode not in RESIZE_MODES:
            raise ConfigError(f"unknown resize_mode '{resize_mode}'; use one of {', '.join(RESIZE_MODES)}")
        if resize_mode == "auto":
            resize_mode = "none" if encoder.any_size else "resize"
        if resize_mode == "none" and not encoder.any_size:
            raise ConfigError(
                f"resize_mode 'none' needs an encoder that accepts any size; this one takes {encoder.input_size}: use 'resize' or 'tiles'"
            )
        if include_cls and not encoder.has_extra_tokens:
            raise ConfigError("include_cls needs an encoder with class tokens (a ViT); this one has none")
        numbers = resolve_layers(layers, encoder.num_layers)
        weights = normalised_weights(len(numbers), layer_weights, global_weight)
        order = sorted(range(len(numbers)), key=numbers.__getitem__)
        self.layers = [numbers[i] for i in order]
        self.weights = [weights[i] for i in order] + [weights[-1]]
        self.include_cls = include_cls
        self.resize_mode = resize_mode
        self.component_names = [f"layer{n}" for n in self.layers] + ["global"]
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(encoder.mean).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(encoder.std).view(shape), persistent=False)
        # float64, so that identical images sum to 1 to the precision of the similarities' dtype
        self.register_buffer("weight_vector", torch.tensor(self.weights, dtype=torch.float64), persistent=False)

    @property
    def needs_embedding(self) -> bool:
        return self.weights[-1] > 0

    def encoder_inputs(self, x: Tensor) -> tuple[Tensor, int]:
        """Normalised encoder inputs for [0, 1] images: ``(N·T) × C × h × w`` and T, the tiles per image."""
        size = tuple(self.network.input_size)
        mode = self.network.interpolation
        if self.resize_mode == "resize" and tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode=mode, antialias=True, align_corners=False)
        elif self.resize_mode == "tiles":
            h, w = x.shape[-2:]
            scale = max(size[0] / h, size[1] / w)
            if scale > 1:
                h, w = max(size[0], round(h * scale)), max(size[1], round(w * scale))
                x = F.interpolate(x, size=(h, w), mode=mode, antialias=True, align_corners=False)
            tiles = [x[..., i : i + size[0], j : j + size[1]] for i in tile_starts(h, size[0]) for j in tile_starts(w, size[1])]
            x = torch.stack(tiles, 1).flatten(0, 1)
            return (x - self.mean) / self.std, len(tiles)
        return (x - self.mean) / self.std, 1

    def features(self, x: Tensor) -> tuple[LayerFeatures, int]:
        inputs, tiles = self.encoder_inputs(x)
        indices = [n - 1 for n in self.layers]
        return self.network(inputs, indices, embedding=self.needs_embedding, extra_tokens=self.include_cls), tiles

    def similarities(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """Per-image components ``N × (|L| + 1)``: mean token cosine of each layer, then the global cosine.

        Columns are named by :attr:`component_names`; a zero-weight global term is reported as 0.
        """
        check_pair(x_hat, x)
        n = x.shape[0]
        # Several distortions of one reference (x.expand(N, ...), as IQA scoring passes them): its features once.
        shared = n > 1 and x.stride(0) == 0
        with torch.no_grad():
            ref, tiles = self.features(x[:1].detach() if shared else x.detach())
        dist, _ = self.features(x_hat)

        def cosine(a: Tensor, b: Tensor) -> Tensor:  # N x tiles (x tokens): one reference broadcast over the batch
            return token_cosine(a.unflatten(0, (n, tiles)), b.unflatten(0, (1 if shared else n, tiles)))

        columns = [cosine(a, b).mean(-1) for a, b in zip(dist.tokens, ref.tokens)]
        if self.needs_embedding:
            columns.append(cosine(dist.embedding, ref.embedding))
        else:
            columns.append(columns[0].new_zeros(columns[0].shape))
        return torch.stack(columns, -1).mean(1)

    def score(self, x_hat: Tensor, x: Tensor) -> Tensor:
        similarities = self.similarities(x_hat, x)
        return similarities @ self.weight_vector.to(similarities.dtype)

    def loss_per_image(self, x_hat: Tensor, x: Tensor) -> Tensor:
        return 1.0 - self.score(x_hat, x)

    def extra_repr(self) -> str:
        weights = ", ".join(f"{n}={w:.3g}" for n, w in zip(self.component_names, self.weights))
        return f"{super().extra_repr()}, resize_mode={self.resize_mode}, weights: {weights}"


class CNNFeatures(FeatureEncoder):
    """Adapter for a CNN: layer ``l`` is the output of ``stages[l]``, its spatial positions the tokens.

    ``trunk`` runs the network up to its last feature map (before pooling and classifier); the
    stage outputs are captured with forward hooks during that run, and the embedding is the
    global average of the trunk's output, i.e. the pooled pre-logits features.
    """

    any_size = True

    def __init__(
        self,
        network: nn.Module,
        stages: Sequence[nn.Module],
        trunk: Callable[[Tensor], Tensor],
        input_size: tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__()
        self.network = network
        self.stages = list(stages)  # submodules of ``network``, not registered twice
        self.trunk = trunk
        self.num_layers = len(self.stages)
        self.input_size, self.mean, self.std, self.interpolation = tuple(input_size), tuple(mean), tuple(std), interpolation

    def forward(self, x: Tensor, layers: Sequence[int], embedding: bool, extra_tokens: bool = False) -> LayerFeatures:
        captured: dict[int, Tensor] = {}
        handles = [self.stages[i].register_forward_hook(lambda _m, _inp, out, i=i: captured.__setitem__(i, out)) for i in layers]
        try:
            final = self.trunk(x)
        finally:
            for handle in handles:
                handle.remove()
        tokens = [captured[i].flatten(2).transpose(1, 2) for i in layers]  # N × C × H × W -> N × HW × C
        return LayerFeatures(tokens, final.mean((2, 3)) if embedding else None)


def efficientnet_lite_stage_ends(network: nn.Module) -> list[nn.Module]:
    """The last MBConv block of each stage (a stage's first block changes the channel count)."""
    blocks = list(network._blocks)
    return [
        b for b, nxt in zip(blocks, [*blocks[1:], None]) if nxt is None or nxt._block_args.input_filters != nxt._block_args.output_filters
    ]


def efficientnet_lite_features(variant: str = "efficientnet-lite0", weights: str | bool | None = True) -> CNNFeatures:
    """EfficientNet-Lite as a :class:`CNNFeatures`: 7 layers = its 7 MBConv stages (strides 2 ... 32)."""
    network = efficientnet_lite(variant, weights=weights)
    spec = efficientnet_lite_spec(variant)
    size = (spec.image_size, spec.image_size)
    return CNNFeatures(network, efficientnet_lite_stage_ends(network), network.extract_features, size, spec.mean, spec.std)


@register_distortion(name="ml-featsim", test_kwargs={"pretrained": None})
def ml_featsim(
    model: str = "efficientnet-lite0",
    pretrained: str | bool | None = True,
    layers: LayerSpec = (2, 3, 5, 7),
    layer_weights: Sequence[float] | None = None,
    global_weight: float | None = None,
    resize_mode: str = "resize",
) -> MultiLayerFeatureSimilarity:
    """Multi-layer feature similarity on a frozen EfficientNet-Lite (real ImageNet weights, offline).

    Layers are MBConv stages 1-7; the default ``(2, 3, 5, 7)`` takes the last stage at each
    stride 4, 8, 16, 32. ``model``: efficientnet-lite0/1/2; ``pretrained``: True for the
    packaged ImageNet weights, a file, or None (random init).
    """
    encoder = efficientnet_lite_features(model, pretrained)
    return MultiLayerFeatureSimilarity(encoder, layers, layer_weights, global_weight, resize_mode=resize_mode, score_name="ml-featsim")
