"""Relative position terms of attention, each returned as an additive ``attn_mask`` bias.

Two kinds:
- ViTDet's decomposed relative position embeddings (MViTv2; detectron2
  ``modeling/backbone/utils.py`` ``get_rel_pos``/``add_decomposed_rel_pos``): per block, a table
  ``rel_pos_h`` [2*qh-1, head_dim] and ``rel_pos_w`` [2*qw-1, head_dim]; the bias of query (i, j)
  and key (k, l) is ``q_ij . Rh[i - k] + q_ij . Rw[j - l]`` (q unscaled). Query dependent.
- ConvMAE's (BEiT-style) relative position bias table (Alpha-VL/ConvMAE DET/models/convmae.py
  ``RelativePositionBias``): a table [(2*Th-1)*(2*Tw-1), heads] indexed by the 2-D offset; the
  same bias for every query content. Query independent.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


# ------------------------------------------------------------------------------------------------
# Decomposed relative position (ViTDet)
# ------------------------------------------------------------------------------------------------
def resize_rel_pos(rel_pos: torch.Tensor, length: int) -> torch.Tensor:
    """rel_pos [L, C] -> [length, C] by linear interpolation (detectron2 ``get_rel_pos``)."""
    if rel_pos.shape[0] == length:
        return rel_pos
    resized = F.interpolate(rel_pos.t().unsqueeze(0), size=length, mode="linear")  # [1, C, length]
    return resized[0].t()


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Embeddings of all (query, key) offsets along one axis -> [q_size, k_size, C].

    The table is interpolated to 2*max(q, k)-1 entries when its length differs; the coordinates of
    the shorter axis are scaled as in detectron2."""
    max_rel_dist = int(2 * max(q_size, k_size) - 1)
    table = resize_rel_pos(rel_pos, max_rel_dist)
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)  # [q, k], >= 0
    return table[relative.long()]


def decomposed_rel_pos_bias(
    q: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    q_size: tuple[int, int],
    k_size: tuple[int, int],
) -> torch.Tensor:
    """q [B, heads, qh*qw, C] (before the 1/sqrt(C) scale) -> bias [B, heads, qh*qw, kh*kw]."""
    qh, qw = q_size
    kh, kw = k_size
    rh = get_rel_pos(qh, kh, rel_pos_h).to(q.dtype)  # [qh, kh, C]
    rw = get_rel_pos(qw, kw, rel_pos_w).to(q.dtype)  # [qw, kw, C]
    b, n, _, c = q.shape
    r_q = q.reshape(b, n, qh, qw, c)
    rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, rh)  # [B, heads, qh, qw, kh]
    rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, rw)  # [B, heads, qh, qw, kw]
    bias = rel_h[..., :, None] + rel_w[..., None, :]  # [B, heads, qh, qw, kh, kw]
    return bias.reshape(b, n, qh * qw, kh * kw)


# ------------------------------------------------------------------------------------------------
# Relative position bias table (ConvMAE / BEiT)
# ------------------------------------------------------------------------------------------------
def resize_rel_pos_bias_table(
    table: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """table [(2*oh-1)*(2*ow-1), heads] -> [(2*nh-1)*(2*nw-1), heads], bicubic over the 2-D offset
    grid (align_corners=False, as the official ``resize_pos_embed``)."""
    (oh, ow), (nh, nw) = old_grid, new_grid
    if (oh, ow) == (nh, nw):
        return table
    heads = table.shape[-1]
    grid = table.t().reshape(1, heads, 2 * oh - 1, 2 * ow - 1).float()
    grid = F.interpolate(grid, size=(2 * nh - 1, 2 * nw - 1), mode="bicubic", align_corners=False)
    return grid.reshape(heads, -1).t().to(table.dtype)


class RelativePositionBias(nn.Module):
    """A learned bias per (2-D offset, head), shared by the attention blocks that call it.

    ``grid`` is the token grid the table is built for (a window, or the whole stage-3 grid for the
    global blocks). ``forward(hw)`` returns the bias [heads, h*w, h*w] of an h x w attention grid:
    the table's central part when h <= Th and w <= Tw (exact), the bicubically enlarged table
    otherwise. Parameter name as the official: ``relative_position_bias_table``; the index is
    computed, not stored (the official ``relative_position_index`` buffer is dropped on loading).
    """

    def __init__(self, grid: tuple[int, int], num_heads: int):
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))
        self.num_heads = num_heads
        th, tw = self.grid
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * th - 1) * (2 * tw - 1), num_heads))

    def forward(self, hw: tuple[int, int] | None = None) -> torch.Tensor:
        h, w = self.grid if hw is None else hw
        th, tw = self.grid
        table = self.relative_position_bias_table
        if h > th or w > tw:
            new = (max(h, th), max(w, tw))
            table = resize_rel_pos_bias_table(table, self.grid, new)
            th, tw = new
        table = table.view(2 * th - 1, 2 * tw - 1, self.num_heads)
        dev = table.device
        dh = torch.arange(h, device=dev)[:, None] - torch.arange(h, device=dev)[None, :] + th - 1  # [h, h]
        dw = torch.arange(w, device=dev)[:, None] - torch.arange(w, device=dev)[None, :] + tw - 1  # [w, w]
        bias = table[dh[:, None, :, None], dw[None, :, None, :]]  # [h(q), w(q), h(k), w(k), heads]
        return bias.reshape(h * w, h * w, self.num_heads).permute(2, 0, 1)  # [heads, Lq, Lk]

    def extra_repr(self) -> str:
        return f"grid={self.grid}, num_heads={self.num_heads}"
