"""Transformer block with window or global attention on a channel-last token grid.

Shared by the plain ViT (ViTDet) and ConvMAE's stage 3. Forward semantics of detectron2
``modeling/backbone/vit.py`` ``Block``/``Attention``: pre-norm; windows are cut after ``norm1``
(zero padding to a multiple of the window), attention, windows merged and padding cropped, residual,
MLP. Attention runs through ``F.scaled_dot_product_attention``, a bias handed in by the caller (e.g.
ConvMAE's shared tables, Swin's shift mask) as its ``attn_mask``; with the block's own decomposed
``rel_pos_h``/``rel_pos_w`` terms, ``decomposed_rel_pos_attention`` picks the kernel by device (GPU: the terms
folded into SDPA's q.k; CPU: a blockwise explicit softmax), neither builds an L x L tensor to keep.

Parameter names are MAE's encoder names (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``) plus detectron2's ``attn.rel_pos_h``/``attn.rel_pos_w``.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp

from .rel_pos import RelativePositionBias
from .rel_pos_attention import Kernel, decomposed_rel_pos_attention
from .window_attention import pad_to_window, shifted_window_mask, window_partition, window_unpartition


class Attention(nn.Module):
    """Multi-head self-attention over a token grid with optional decomposed relative positions.

    ``rel_pos_size`` (h, w): the grid the zero-initialised tables ``rel_pos_h`` [2h-1, head_dim] and
    ``rel_pos_w`` [2w-1, head_dim] are sized for (the window, or the full grid for global blocks);
    None disables them. Other grids interpolate the tables linearly (detectron2 ``get_rel_pos``).
    ``rel_pos_kernel``: the kernel ``decomposed_rel_pos_attention`` runs them with (None: the device's).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        rel_pos_size: tuple[int, int] | None = None,
        rel_pos_zero_init: bool = True,
        rel_pos_kernel: Kernel | None = None,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = rel_pos_size is not None
        self.rel_pos_kernel = rel_pos_kernel
        if self.use_rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_pos_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_pos_size[1] - 1, head_dim))
            if not rel_pos_zero_init:
                nn.init.trunc_normal_(self.rel_pos_h, std=0.02)
                nn.init.trunc_normal_(self.rel_pos_w, std=0.02)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, h, w, C] (a token grid) or [B, L, C] (a sequence, e.g. class token + grid; not with
        the decomposed tables), attn_bias broadcastable to [B, heads, L, L] or None -> x's shape."""
        shape = x.shape
        b, c = shape[0], shape[-1]
        qkv = self.qkv(x).reshape(b, -1, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, nH, L, hd]
        mask = None if attn_bias is None else attn_bias.to(q.dtype)
        if self.use_rel_pos:
            if x.dim() != 4:
                raise ValueError(f"decomposed rel-pos needs a token grid [B, h, w, C]; got {tuple(shape)}")
            hw = (shape[1], shape[2])  # no [B, nH, L, L] bias is kept
            x = decomposed_rel_pos_attention(q, k, v, self.rel_pos_h, self.rel_pos_w, hw, hw, mask,
                                             self.rel_pos_kernel)
        else:
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, nH, L, hd]; scale hd^-0.5
        x = x.transpose(1, 2).reshape(shape)
        return self.proj(x)


class WindowBlock(nn.Module):
    """Pre-norm transformer block; ``window_size`` 0 = global attention, > 0 = non-overlapping
    windows of that size (``shift_size`` > 0: Swin's cyclic shift with its region mask).

    ``forward(x, attn_bias)``: x [B, H, W, C] -> [B, H, W, C]; ``attn_bias`` [heads, L, L] is added
    to every window's (or the global) attention logits, L = window_size^2 (or H*W).
    ``forward(x, attn_bias, hw)``: x [B, P + h*w, C], P prefix tokens (a class token) before the
    h x w grid (global blocks only; mmseg's ``MAE`` backbone keeps its class token in attention).

    Options of the segmentation recipes (BEiT-style; mmseg's MAE backbone, ConvMAE's SEG backbone):
    ``rel_pos_bias_grid`` (h, w) gives the block its own zero-initialised relative position bias
    table (``rel_pos_bias.relative_position_bias_table``) for that attention grid (the window, or the
    full grid of a global block; ``num_prefix_tokens`` 1 adds BEiT's 3 class-token entries), added
    to ``attn_bias``; ``init_values`` adds layer scale
    (``gamma_1``, ``gamma_2``, per-channel, initialised to that value) on both residual branches.
    ``rel_pos_kernel``: see ``Attention``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        act_layer=nn.GELU,
        window_size: int = 0,
        shift_size: int = 0,
        rel_pos_size: tuple[int, int] | None = None,
        rel_pos_zero_init: bool = True,
        rel_pos_bias_grid: tuple[int, int] | None = None,
        init_values: float | None = None,
        num_prefix_tokens: int = 0,
        rel_pos_kernel: Kernel | None = None,
    ):
        super().__init__()
        if shift_size and not 0 < shift_size < window_size:
            raise ValueError(f"shift_size must be in (0, window_size={window_size}); got {shift_size}")
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias, rel_pos_size, rel_pos_zero_init, rel_pos_kernel)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer)
        self.rel_pos_bias = (
            None if rel_pos_bias_grid is None
            else RelativePositionBias(rel_pos_bias_grid, num_heads, num_prefix_tokens)
        )
        if init_values is not None:
            self.gamma_1 = nn.Parameter(torch.full((dim,), float(init_values)))
            self.gamma_2 = nn.Parameter(torch.full((dim,), float(init_values)))
        else:
            self.gamma_1 = self.gamma_2 = None

    def _windowed_attention(self, x: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
        """x [B, H, W, C] (normalised) -> attention output [B, H, W, C], window by window."""
        ws, s = self.window_size, self.shift_size
        h, w = x.shape[1], x.shape[2]
        if not s:
            windows, pad_hw = window_partition(x, ws)  # [B*nW, ws, ws, C]
            out = self.attn(windows, attn_bias)
            return window_unpartition(out, ws, pad_hw, (h, w))
        b = x.shape[0]
        x, pad_hw = pad_to_window(x, ws)
        x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows, _ = window_partition(x, ws)  # [B*nW, ws, ws, C]
        mask = shifted_window_mask(pad_hw, ws, s, x.device)  # [nW, L, L]
        bias = mask[:, None] if attn_bias is None else mask[:, None] + attn_bias[None]  # [nW, nH|1, L, L]
        n_w = mask.shape[0]
        bias = bias.unsqueeze(0).expand(b, *bias.shape).reshape(b * n_w, *bias.shape[1:])
        out = self.attn(windows, bias)
        out = window_unpartition(out, ws, pad_hw, pad_hw)
        out = torch.roll(out, shifts=(s, s), dims=(1, 2))
        return out[:, :h, :w].contiguous()

    def _grid(self, x: torch.Tensor, hw: tuple[int, int] | None) -> tuple[int, int]:
        """The attention grid of the block's own bias table (checks a sequence input)."""
        if x.dim() == 4:
            return (self.window_size,) * 2 if self.window_size > 0 else (x.shape[1], x.shape[2])
        if self.window_size > 0 or hw is None:
            raise ValueError(
                f"a token sequence {tuple(x.shape)} needs a global block (window_size 0, got {self.window_size}) "
                "and its grid hw=(h, w)"
            )
        return hw

    def forward(
        self, x: torch.Tensor, attn_bias: torch.Tensor | None = None, hw: tuple[int, int] | None = None
    ) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        grid = self._grid(x, hw)
        if self.rel_pos_bias is not None:
            own = self.rel_pos_bias(grid)  # [heads, P + L, P + L]
            attn_bias = own if attn_bias is None else attn_bias + own
        if self.window_size > 0:
            x = self._windowed_attention(x, attn_bias)
        else:
            x = self.attn(x, attn_bias)
        if self.gamma_1 is not None:
            x = self.gamma_1 * x
        x = shortcut + self.drop_path(x)
        y = self.mlp(self.norm2(x))
        if self.gamma_2 is not None:
            y = self.gamma_2 * y
        return x + self.drop_path(y)


def init_transformer_weights(m: nn.Module) -> None:
    """detectron2 ViT init: trunc-normal(0.02) Linear weights, zero bias; LayerNorm (1, 0)."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
