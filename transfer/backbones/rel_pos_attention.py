"""Attention with ViTDet's decomposed relative positions: one kernel per device.

    softmax(q.k / sqrt(C) + rel_h[row(key)] + rel_w[col(key)] (+ attn_mask)) v

``decomposed_rel_pos_attention`` computes the two terms (``rel_pos.decomposed_rel_pos_terms``) and hands
them to the caller's kernel (``kernel=``; ``vit_block.Attention(rel_pos_kernel=)``) or the device's
(``rel_pos_kernel``):
- GPU (any non-CPU device): the terms folded into SDPA's q.k (``rel_pos.folded_attention``),
  so the flash / memory-efficient kernels run; no L x L tensor.
- CPU: an explicit softmax over blocks of query rows (``BlockwiseAttention``): the logits of
  one block get the two terms added in place, the forward keeps only the output and each row's
  log-sum-exp, and the backward recomputes the probabilities block by block (as flash attention
  does). No L x L tensor is kept, and the matmuls stay at the head width C, where the folded form
  widens them to C + kh + kw (3x for a ViT-B global block at 1024 px), which SDPA's CPU kernel pays.

Both are exact up to rounding (tests/test_attention.py compares them with detectron2's ``Attention``).
"""
from __future__ import annotations

from typing import Callable

import torch

from .rel_pos import decomposed_rel_pos_terms, folded_attention

BLOCK_BYTES = 16 * 2**20  # logits of one block of query rows (all heads): ~16 MiB, cache-sized work
KEEP_MAX_KEYS = 256  # up to this many keys (windows: 14x14, 16x16) the probabilities are kept, not recomputed


def _rows_per_block(q: torch.Tensor, keys: int) -> int:
    """All rows when the probabilities are kept, else a block of about BLOCK_BYTES of logits."""
    if keys <= KEEP_MAX_KEYS:
        return q.shape[-2]
    per_row = q[..., 0, 0].numel() * keys * q.element_size()
    return max(1, min(q.shape[-2], BLOCK_BYTES // per_row))


def _logits(q: torch.Tensor, k: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor, mask: torch.Tensor | None,
            k_size: tuple[int, int]) -> torch.Tensor:
    """Scaled q.k plus the relative terms (and mask) of a block of rows -> [B, H, rows, kh*kw]."""
    s = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2))
    s.view(*s.shape[:-1], *k_size).add_(rel_h[..., :, None]).add_(rel_w[..., None, :])
    return s if mask is None else s.add_(mask)


def _mask_rows(mask: torch.Tensor | None, a: int, b: int) -> torch.Tensor | None:
    """The mask's rows a:b (all of it where it broadcasts over rows)."""
    return mask if mask is None or mask.shape[-2] == 1 else mask[..., a:b, :]


class BlockwiseAttention(torch.autograd.Function):
    """q [B, H, Lq, C], k [B, H, Lk, C], v [B, H, Lk, Cv], rel_h [B, H, Lq, kh], rel_w [B, H, Lq, kw],
    mask broadcastable to [B, H, Lq, Lk] or None -> [B, H, Lq, Cv]. Short sequences (windows) run as
    one block and keep their probabilities for the backward; long ones recompute them per block."""

    @staticmethod
    def forward(ctx, q, k, v, rel_h, rel_w, mask, k_size):
        out = q.new_empty(*q.shape[:-1], v.shape[-1])
        lse = q.new_empty(q.shape[:-1])
        rows, keep = _rows_per_block(q, k.shape[-2]), k.shape[-2] <= KEEP_MAX_KEYS
        probs = None
        for a in range(0, q.shape[-2], rows):
            b = a + rows
            s = _logits(q[..., a:b, :], k, rel_h[..., a:b, :], rel_w[..., a:b, :], _mask_rows(mask, a, b), k_size)
            top = s.amax(dim=-1, keepdim=True)
            total = s.sub_(top).exp_().sum(dim=-1, keepdim=True)  # s: unnormalised probabilities
            if keep:  # one block: keep the probabilities
                probs = s.div_(total)
                out = torch.matmul(probs, v)
                break
            out[..., a:b, :] = torch.matmul(s, v).div_(total)
            lse[..., a:b] = (top + total.log()).squeeze(-1)
        kept = (None, None) if keep else (out, lse)  # kept probabilities need neither
        ctx.save_for_backward(q, k, v, rel_h, rel_w, mask, *kept, probs)
        ctx.k_size, ctx.rows = k_size, rows
        return out

    @staticmethod
    def backward(ctx, d_out):
        q, k, v, rel_h, rel_w, mask, out, lse, probs = ctx.saved_tensors
        scale = q.shape[-1] ** -0.5
        delta = None if out is None else (d_out * out).sum(-1, keepdim=True)  # [B, H, Lq, 1]: sum_j P_ij dP_ij
        dq, drel_h, drel_w = torch.empty_like(q), torch.empty_like(rel_h), torch.empty_like(rel_w)
        dk, dv = torch.zeros_like(k), torch.zeros_like(v)
        mask_grad = mask is not None and ctx.needs_input_grad[5]
        dmask = torch.zeros_like(mask) if mask_grad else None
        for a in range(0, q.shape[-2], ctx.rows):
            b = a + ctx.rows
            m = _mask_rows(mask, a, b)
            if probs is not None:
                p = probs
            else:  # recompute the block's probabilities [B, H, rows, Lk]
                p = _logits(q[..., a:b, :], k, rel_h[..., a:b, :], rel_w[..., a:b, :], m, ctx.k_size)
                p = p.sub_(lse[..., a:b, None]).exp_()
            dv += torch.matmul(p.transpose(-1, -2), d_out[..., a:b, :])
            dp = torch.matmul(d_out[..., a:b, :], v.transpose(-1, -2))  # [B, H, rows, Lk]
            row_dot = torch.einsum("...ij,...ij->...i", dp, p)[..., None] if delta is None else delta[..., a:b, :]
            ds = dp.sub_(row_dot).mul_(p)
            dq[..., a:b, :] = torch.matmul(ds, k).mul_(scale)
            dk += torch.matmul(ds.transpose(-1, -2), q[..., a:b, :] * scale)
            ds_grid = ds.view(*ds.shape[:-1], *ctx.k_size)
            drel_h[..., a:b, :] = ds_grid.sum(-1)
            drel_w[..., a:b, :] = ds_grid.sum(-2)
            if mask_grad and m is mask:
                dmask += ds.sum_to_size(mask.shape)
            elif mask_grad:
                dmask[..., a:b, :] = ds.sum_to_size(m.shape)
        return dq, dk, dv, drel_h, drel_w, dmask, None


Kernel = Callable[..., torch.Tensor]  # (q, k, v, rel_h, rel_w, attn_mask, k_size) -> [B, heads, Lq, C]


def rel_pos_kernel(device: torch.device) -> Kernel:
    """The kernel for ``device``: the blockwise explicit softmax on the CPU, the folded SDPA call elsewhere."""
    return BlockwiseAttention.apply if device.type == "cpu" else folded_attention


def decomposed_rel_pos_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_pos_h: torch.Tensor,
                                 rel_pos_w: torch.Tensor, q_size: tuple[int, int], k_size: tuple[int, int],
                                 attn_mask: torch.Tensor | None = None, kernel: Kernel | None = None
                                 ) -> torch.Tensor:
    """softmax(q.k / sqrt(C) + rel_h[row(key)] + rel_w[col(key)] (+ attn_mask)) v with the tables
    ``rel_pos_h`` [2*qh-1, C], ``rel_pos_w`` [2*qw-1, C]: q, k, v [B, heads, L, C] -> [B, heads, Lq, C];
    ``attn_mask`` broadcastable to [B, heads, Lq, Lk] (a learned bias gets its gradient); ``kernel``:
    ``rel_pos_kernel(q.device)`` unless given."""
    rel_h, rel_w = decomposed_rel_pos_terms(q, rel_pos_h, rel_pos_w, q_size, k_size)
    kernel = kernel or rel_pos_kernel(q.device)
    return kernel(q, k, v, rel_h, rel_w, attn_mask, tuple(k_size))
