"""Relative position terms of attention: ViTDet's folded into SDPA's q.k, bias tables as ``attn_mask``.

Two kinds:
- ViTDet's decomposed relative position embeddings (MViTv2; detectron2
  ``modeling/backbone/utils.py`` ``get_rel_pos``/``add_decomposed_rel_pos``): per block, a table
  ``rel_pos_h`` [2*qh-1, head_dim] and ``rel_pos_w`` [2*qw-1, head_dim]; the bias of query (i, j)
  and key (k, l) is ``q_ij . Rh[i - k] + q_ij . Rw[j - l]`` (q unscaled). Query dependent.
- ConvMAE's (BEiT-style) relative position bias table (Alpha-VL/ConvMAE DET/models/convmae.py
  ``RelativePositionBias``): a table [(2*Th-1)*(2*Tw-1), heads] indexed by the 2-D offset; the
  same bias for every query content. Query independent. With a class token in the sequence
  (mmseg ``BEiTAttention``, used by its ``MAE`` backbone) the table has 3 more rows, at its end:
  class -> patch, patch -> class, class -> class.
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


def decomposed_rel_pos_terms(
    q: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    q_size: tuple[int, int],
    k_size: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """q [B, heads, qh*qw, C] (before the 1/sqrt(C) scale) -> (rel_h [B, heads, qh*qw, kh],
    rel_w [B, heads, qh*qw, kw]): query (i, j)'s term for every key row k and every key column l."""
    qh, qw = q_size
    kh, kw = k_size
    rh = get_rel_pos(qh, kh, rel_pos_h).to(q.dtype)  # [qh, kh, C]
    rw = get_rel_pos(qw, kw, rel_pos_w).to(q.dtype)  # [qw, kw, C]
    b, n, _, c = q.shape
    r_q = q.reshape(b, n, qh, qw, c)
    rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, rh)  # [B, heads, qh, qw, kh]
    rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, rw)  # [B, heads, qh, qw, kw]
    return rel_h.reshape(b, n, qh * qw, kh), rel_w.reshape(b, n, qh * qw, kw)


def _one_hot_rows_cols(k_size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """[kh*kw, kh + kw]: key (k, l) -> one-hot of its row k, then one-hot of its column l."""
    kh, kw = k_size
    rows = torch.eye(kh, dtype=like.dtype, device=like.device).repeat_interleave(kw, dim=0)  # [kh*kw, kh]
    cols = torch.eye(kw, dtype=like.dtype, device=like.device).repeat(kh, 1)  # [kh*kw, kw]
    return torch.cat([rows, cols], dim=1)


def folded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor,
                     attn_mask: torch.Tensor | None, k_size: tuple[int, int]) -> torch.Tensor:
    """softmax(q.k / sqrt(C) + rel_h[row(key)] + rel_w[col(key)] (+ attn_mask)) v without an L x L bias
    (the GPU kernel of ``rel_pos_attention.decomposed_rel_pos_attention``).

    The decomposed bias is a dot product, so it rides in the attention's own q.k: each query gains the
    features (rel_h, rel_w) and each key the one-hot features of its row and column, so that
    q'.k' = q.k / sqrt(C) + rel_h[k] + rel_w[l] (q is pre-scaled and SDPA runs with scale 1). Widths
    are padded with zeros to a multiple of 8, and v to the same width (flash kernels need equal
    widths); the padding adds nothing to any dot product and is cut from the output. Exact up to
    rounding; without ``attn_mask`` SDPA can use its flash / memory-efficient kernels (widths above a
    kernel's limit, e.g. 256 for flash on GPU, i.e. grids over 96 x 96 at C = 64, fall back to SDPA's
    other kernels by themselves). A ViT-B global block at 1024 px widens 64 to 192.

    q, k, v [B, heads, L, C], rel_h [B, heads, Lq, kh], rel_w [B, heads, Lq, kw] (``decomposed_rel_pos_terms``)
    -> [B, heads, Lq, C].
    """
    c = q.shape[-1]
    extra = rel_h.shape[-1] + rel_w.shape[-1]
    pad = -(c + extra) % 8
    q_ext = torch.cat([q * c**-0.5, rel_h, rel_w], dim=-1)  # [B, heads, Lq, C + kh + kw]
    k_feat = _one_hot_rows_cols(k_size, k).expand(*k.shape[:-1], extra)
    k_ext = torch.cat([k, k_feat], dim=-1)  # [B, heads, Lk, C + kh + kw]
    if pad:
        q_ext, k_ext = F.pad(q_ext, (0, pad)), F.pad(k_ext, (0, pad))
    v_ext = F.pad(v, (0, extra + pad))  # [B, heads, Lk, C + kh + kw + pad]
    out = F.scaled_dot_product_attention(q_ext, k_ext, v_ext, attn_mask=attn_mask, scale=1.0)
    return out[..., :c]


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
    global blocks). ``forward(hw)`` returns the bias [heads, P + h*w, P + h*w] of an h x w attention
    grid preceded by ``num_prefix_tokens`` P (0, or 1 class token) tokens: the table's central part
    when h <= Th and w <= Tw (exact), the bicubically enlarged table otherwise. Parameter name as the
    official: ``relative_position_bias_table`` [(2*Th-1)*(2*Tw-1) (+ 3 with a class token), heads];
    the index is computed, not stored (the official ``relative_position_index`` buffer is dropped
    on loading).
    """

    def __init__(self, grid: tuple[int, int], num_heads: int, num_prefix_tokens: int = 0):
        super().__init__()
        if num_prefix_tokens not in (0, 1):
            raise ValueError(f"num_prefix_tokens must be 0 or 1 (a class token), got {num_prefix_tokens}")
        self.grid = (int(grid[0]), int(grid[1]))
        self.num_heads = num_heads
        self.num_prefix_tokens = num_prefix_tokens
        th, tw = self.grid
        rows = (2 * th - 1) * (2 * tw - 1) + 3 * num_prefix_tokens
        self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, num_heads))

    def _grid_bias(self, table: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """table [(2*Th-1)*(2*Tw-1), heads] -> bias [heads, h*w, h*w] between the grid tokens."""
        th, tw = self.grid
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

    def forward(self, hw: tuple[int, int] | None = None) -> torch.Tensor:
        h, w = self.grid if hw is None else hw
        table = self.relative_position_bias_table
        if not self.num_prefix_tokens:
            return self._grid_bias(table, h, w)
        bias = self._grid_bias(table[:-3], h, w)  # [heads, L, L]
        cls_to_patch, patch_to_cls, cls_to_cls = table[-3], table[-2], table[-1]  # each [heads]
        n, length = self.num_heads, h * w
        top = torch.cat([cls_to_cls[:, None, None], cls_to_patch[:, None, None].expand(n, 1, length)], dim=2)
        rest = torch.cat([patch_to_cls[:, None, None].expand(n, length, 1), bias], dim=2)  # [heads, L, 1 + L]
        return torch.cat([top, rest], dim=1)  # [heads, 1 + L, 1 + L]

    def extra_repr(self) -> str:
        return f"grid={self.grid}, num_heads={self.num_heads}, num_prefix_tokens={self.num_prefix_tokens}"
