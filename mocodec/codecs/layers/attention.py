"""The attention modules of MLIC++'s multi-reference entropy model.

* :class:`CheckerboardWindowAttention` - the *local spatial* context: attention inside
  a small window around each latent position, masked so that only decoded anchors
  are attended to (the non-anchors of the same slice are not decoded yet).
* :class:`GlobalInterContext` - the *global inter-slice* context: linear attention over
  all positions of the slices decoded so far.
* :class:`GlobalIntraContext` - the *global intra-slice* context: the previous slice
  tells which anchor positions resemble each non-anchor position (its anchors are keys,
  its non-anchors queries), and the current slice's decoded anchors are the values.

"Linear" attention is Shen et al.'s efficient attention (WACV 2021): keys are
normalised over positions and queries over channels, so ``softmax_L(K) Vᵀ`` is a
small ``d x d`` matrix and the cost grows linearly with the number of positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import Tensor, nn
from torch.nn.init import trunc_normal_

from mocodec.codecs.layers.checkerboard import ANCHOR, NON_ANCHOR, gather, keep, scatter

# Attention logit added where a key must not be seen. A large finite value, not -inf:
# a query whose whole window is masked then attends uniformly instead of giving NaN.
MASKED_LOGIT = -100.0


def linear_attention(queries: Tensor, keys: Tensor, values: Tensor, heads: int) -> Tensor:
    """Efficient attention: B x C x Lq queries, B x C x L keys/values -> B x C x Lq.

    Channels are split into ``heads`` contiguous groups; per head,
    ``out = (softmax_L(K) Vᵀ)ᵀ softmax_C(Q)``.
    """
    b, c, _ = queries.shape
    q = queries.reshape(b, heads, c // heads, -1).softmax(dim=2)
    k = keys.reshape(b, heads, c // heads, -1).softmax(dim=3)
    v = values.reshape(b, heads, c // heads, -1)
    context = k @ v.transpose(-1, -2)  # B x heads x d x d
    return (context.transpose(-1, -2) @ q).reshape(b, c, -1)


def relative_position_index(window: int) -> Tensor:
    """Swin's index into a (2w-1)^2 bias table for every (query, key) pair of a w x w window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    delta = (coords[:, :, None] - coords[:, None, :]) + (window - 1)  # 2 x w² x w², both >= 0
    return delta[0] * (2 * window - 1) + delta[1]


def _projection(dim: int) -> nn.Sequential:
    """Query/key/value projection: a 1x1 convolution then a 3x3 depthwise one."""
    return nn.Sequential(nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 3, padding=1, groups=dim))


def _conv_mlp(dim: int, hidden: int, out: int) -> nn.Sequential:
    """Pointwise MLP with a depthwise 3x3 convolution between its layers."""
    return nn.Sequential(
        nn.Conv2d(dim, hidden, 1),
        nn.GELU(),
        nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden),
        nn.GELU(),
        nn.Conv2d(hidden, out, 1),
    )


class CheckerboardWindowAttention(nn.Module):
    """Local context for a slice's non-anchors from its decoded anchors: ``dim`` -> ``2·dim`` channels.

    Every latent position gets the ``window x window`` neighbourhood around it (zero padded).
    Inside it, positions attend to each other (multi-head, with a relative-position bias),
    and only anchor-to-anchor pairs are allowed; a ``window x window`` convolution then
    collapses the attended window into one vector, followed by a projection and a
    pre-norm MLP with a residual connection.

    The input holds anchors only (zeros elsewhere), so the output at any position depends
    on decoded anchors alone: the decoder can compute it before the non-anchors exist.
    It is the context *of* the non-anchors, so it is computed around non-anchor positions
    only (half the windows); the output is zero at anchor positions.
    """

    def __init__(self, dim: int, window: int = 5, heads: int = 2, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.dim, self.window, self.heads = dim, window, heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.norm1 = nn.LayerNorm(dim)
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.relative_position_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        trunc_normal_(self.relative_position_table, std=0.02)
        # Derived from ``window`` alone: rebuilt, not stored in checkpoints.
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.fusion = nn.Conv2d(dim, 2 * dim, window)
        self.proj = nn.Linear(2 * dim, 2 * dim)
        self.norm2 = nn.LayerNorm(2 * dim)
        self.mlp = Mlp(2 * dim, int(2 * dim * mlp_ratio), 2 * dim, act_layer=nn.GELU)

    def _non_anchor_windows(self, x: Tensor) -> Tensor:
        """B x C x H x W -> B x C·w² x L': the window around each non-anchor (zero padded).

        Windows come in :meth:`non_anchor_positions` order: the non-anchors are the
        (even, even) and (odd, odd) positions, so two stride-2 unfolds gather exactly them.
        """
        pad = self.window // 2
        padded = F.pad(x, (pad, pad, pad, pad))
        windows = [F.unfold(padded, self.window, stride=2)]
        if min(x.shape[-2:]) > 1:
            windows.append(F.unfold(padded[..., 1:, 1:], self.window, stride=2))
        return torch.cat(windows, dim=-1)

    @staticmethod
    def non_anchor_positions(height: int, width: int, device: torch.device) -> Tensor:
        """Raster indices of the non-anchors: the (even, even) positions, then the (odd, odd) ones."""
        grid = torch.arange(height * width, device=device).view(height, width)
        return torch.cat([grid[0::2, 0::2].flatten(), grid[1::2, 1::2].flatten()])

    def anchor_pair_mask(self, height: int, width: int, device: torch.device) -> Tensor:
        """L' x w² x w² logits offset of the non-anchors' windows: 0 where query and key are both anchors, else MASKED_LOGIT."""
        anchors = ANCHOR.mask(height, width, device).to(torch.float32)[None, None]
        windows = self._non_anchor_windows(anchors)[0].transpose(0, 1)  # L' x w², 0 at padding too
        allowed = windows[:, :, None] * windows[:, None, :]
        return torch.where(allowed > 0, 0.0, MASKED_LOGIT)

    def forward(self, anchors: Tensor) -> Tensor:
        b, c, h, w = anchors.shape
        size = self.window**2
        tokens = self.norm1(anchors.flatten(2).transpose(1, 2))  # B x L x C
        qkv = self.qkv_proj(tokens).transpose(1, 2).reshape(b, 3 * c, h, w)
        # Only the non-anchors' windows (L' of them): every window operation below is per window.
        windows = self._non_anchor_windows(qkv)
        count = windows.shape[-1]
        # Channel c of head n is c = d·heads + n (interleaved): the published weights' layout.
        windows = windows.view(b, 3, self.head_dim, self.heads, size, count)
        q, k, v = windows.permute(1, 0, 5, 3, 4, 2).unbind(0)  # each B x L' x heads x w² x d
        bias = self.relative_position_table[self.relative_position_index].permute(2, 0, 1)  # heads x w² x w²
        logits = (q * self.scale) @ k.transpose(-1, -2) + bias + self.anchor_pair_mask(h, w, anchors.device)[:, None]
        attended = logits.softmax(dim=-1) @ v  # B x L' x heads x w² x d
        # The fusion convolution reads head-major channels (c = n·head_dim + d).
        attended = attended.permute(0, 1, 2, 4, 3).reshape(b * count, c, self.window, self.window)
        # The token layers run on all H·W positions (zeros at anchors) in row-major layout, as
        # ever: a matrix product's rounding can depend on its row count and layout.
        fused = attended.new_zeros(b, h * w, 2 * c)
        fused[:, self.non_anchor_positions(h, w, anchors.device)] = self.fusion(attended).view(b, count, 2 * c)
        context = self.proj(fused)
        context = context + self.mlp(self.norm2(context))
        return keep(context.transpose(1, 2).reshape(b, 2 * c, h, w), NON_ANCHOR)


class GlobalInterContext(nn.Module):
    """Global context from all decoded slices (``dim`` channels) -> ``out_dim`` channels."""

    def __init__(self, dim: int, out_dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"{dim} channels do not split into {heads} heads")
        self.heads = heads
        self.queries, self.keys, self.values = _projection(dim), _projection(dim), _projection(dim)
        hidden = out_dim * 3 // 2
        self.reprojection = nn.Conv2d(dim, hidden, 5, padding=2)
        self.mlp = _conv_mlp(hidden, 2 * out_dim, out_dim)
        self.skip = nn.Conv2d(hidden, out_dim, 1)

    def forward(self, decoded: Tensor) -> Tensor:
        b, c, h, w = decoded.shape
        attended = linear_attention(
            self.queries(decoded).flatten(2), self.keys(decoded).flatten(2), self.values(decoded).flatten(2), self.heads
        )
        x = self.reprojection(attended.view(b, c, h, w))
        return self.skip(x) + self.mlp(x)


class GlobalIntraContext(nn.Module):
    """Global context for a slice's non-anchors (``dim`` -> ``2·dim`` channels).

    The previous slice is fully decoded, so its anchors (keys) and non-anchors (queries)
    say which anchor positions resemble each non-anchor position; the attention then
    gathers the *current* slice's decoded anchors (values) accordingly.
    """

    def __init__(self, dim: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.queries, self.keys, self.values = _projection(dim), _projection(dim), _projection(dim)
        self.reprojection = nn.Conv2d(dim, 2 * dim, 5, padding=2)
        self.mlp = _conv_mlp(2 * dim, 4 * dim, 2 * dim)

    def forward(self, previous_slice: Tensor, anchors: Tensor) -> Tensor:
        queries = gather(self.queries(keep(previous_slice, NON_ANCHOR)), NON_ANCHOR)
        keys = gather(self.keys(keep(previous_slice, ANCHOR)), ANCHOR)
        values = gather(self.values(anchors), ANCHOR)
        attended = scatter(linear_attention(queries, keys, values, self.heads), NON_ANCHOR, anchors.shape[-2:])
        x = self.reprojection(attended)
        return x + self.mlp(x)
