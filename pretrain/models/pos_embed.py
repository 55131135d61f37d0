"""Fixed 2-D sine-cosine position embeddings (MAE, ConvMAE and SIM use the same construction).

Half of the channels encode the row coordinate, half the column coordinate; each half is
[sin(w * p), cos(w * p)] with frequencies w_d = 1 / 10000^(d / (D/4)), as in the MAE paper.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


def sincos_1d(embed_dim: int, pos: torch.Tensor) -> torch.Tensor:
    """pos: [...] float -> [..., embed_dim] as [sin(pos * w), cos(pos * w)]."""
    if embed_dim % 2:
        raise ValueError(f"embed_dim must be even, got {embed_dim}")
    omega = torch.arange(embed_dim // 2, dtype=torch.float64, device=pos.device) / (embed_dim / 2.0)
    omega = 1.0 / 10000**omega  # [D/2]
    out = pos.to(torch.float64).unsqueeze(-1) * omega  # [..., D/2]
    return torch.cat([out.sin(), out.cos()], dim=-1).float()


def sincos_2d_from_coords(embed_dim: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Embed arbitrary (possibly fractional) 2-D coordinates: rows, cols [...] -> [..., embed_dim].

    The first half of the channels embeds the column (x) coordinate and the second half the row (y)
    coordinate, the channel order of the official MAE code (its meshgrid puts w first).
    """
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be divisible by 4, got {embed_dim}")
    return torch.cat([sincos_1d(embed_dim // 2, cols), sincos_1d(embed_dim // 2, rows)], dim=-1)


def get_2d_sincos_pos_embed(
    embed_dim: int, grid_size: int | tuple[int, int], cls_token: bool = False
) -> torch.Tensor:
    """Position embedding of an (H, W) token grid -> [H*W (+1), embed_dim], row-major order.

    With ``cls_token`` a zero row is prepended for the class token.
    """
    gh, gw = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows, cols = torch.meshgrid(
        torch.arange(gh, dtype=torch.float64), torch.arange(gw, dtype=torch.float64), indexing="ij"
    )
    emb = sincos_2d_from_coords(embed_dim, rows.reshape(-1), cols.reshape(-1))
    if cls_token:
        emb = torch.cat([torch.zeros(1, embed_dim), emb], dim=0)
    return emb


# --------------------------------------------------------------------------------------------------
# SIM: position of view 2's patches expressed in view 1's patch grid
# (OpenGVLab/Siamese-Image-Modeling util/pos_embed.py get_2d_sincos_pos_embed_relative,
#  main_pretrain.py DataAugmentationForSIM).


class RelativeCrop(NamedTuple):
    """Geometry of crop 2 relative to crop 1, each entry [N] (fractions of crop 1's size).

    Boxes are torchvision crop parameters (top i, left j, height h, width w) in pixels of the image
    *after* that view's horizontal flip (the official pipeline flips, then crops).
    """

    delta_i: torch.Tensor  # (i2 - i1) / h1
    delta_j: torch.Tensor  # (j2 - j1) / w1
    delta_h: torch.Tensor  # h2 / h1
    delta_w: torch.Tensor  # w2 / w1
    relative_flip: torch.Tensor  # exactly one of the two views is flipped
    flip_delta_j: torch.Tensor  # (W - j1 - j2) / w1, W = image width


def relative_crop(
    boxes1: torch.Tensor,
    boxes2: torch.Tensor,
    flips1: torch.Tensor | None = None,
    flips2: torch.Tensor | None = None,
    image_widths: torch.Tensor | None = None,
) -> RelativeCrop:
    """boxes [N, 4] as (i, j, h, w), flips [N] bool, image_widths [N] -> RelativeCrop.

    Without flips, both views are unflipped (``image_widths`` is then not needed).
    """
    b1, b2 = boxes1.double(), boxes2.double()
    i1, j1, h1, w1 = b1.unbind(-1)
    i2, j2, h2, w2 = b2.unbind(-1)
    if flips1 is None and flips2 is None:
        relative_flip = torch.zeros_like(i1, dtype=torch.bool)
        flip_delta_j = torch.zeros_like(i1)
    else:
        if image_widths is None:
            raise ValueError("relative_crop: flips given without image_widths; pass the widths W")
        f1 = torch.zeros_like(i1, dtype=torch.bool) if flips1 is None else flips1.bool()
        f2 = torch.zeros_like(i1, dtype=torch.bool) if flips2 is None else flips2.bool()
        relative_flip = f1 ^ f2
        flip_delta_j = (image_widths.double() - j1 - j2) / w1
    return RelativeCrop(
        ((i2 - i1) / h1).float(), ((j2 - j1) / w1).float(), (h2 / h1).float(), (w2 / w1).float(),
        relative_flip, flip_delta_j.float(),
    )


def relative_pos_embed(
    rel: RelativeCrop | tuple, grid_size: int | tuple[int, int], embed_dim: int
) -> torch.Tensor:
    """Sin-cos embedding of view 2's patch centres in view 1's grid plus the scale change.

    rel: RelativeCrop (or the official 6-tuple ``rel_pos_21``) with entries [N]
    -> [N, gh*gw, 2 * embed_dim], channels [row (D/2) | column (D/2) | 10 log(h2/h1) (D/2) |
    10 log(w2/w1) (D/2)], each block [sin | cos] with D/4 frequencies: the official layout (note: row
    first, the opposite of ``get_2d_sincos_pos_embed``). SIM maps it to D with ``decoder_pos_mlp``.
    For identical crops the first D channels are the plain grid embedding with its halves swapped
    and the scale channels are sin(0)=0 / cos(0)=1.
    """
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be divisible by 4, got {embed_dim}")
    delta_i, delta_j, delta_h, delta_w, relative_flip, flip_delta_j = (
        torch.as_tensor(t) for t in rel
    )
    gh, gw = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    dev = delta_h.device
    rows, cols = torch.meshgrid(
        torch.arange(gh, dtype=torch.float64, device=dev) + 0.5,
        torch.arange(gw, dtype=torch.float64, device=dev) + 0.5,
        indexing="ij",
    )
    rows, cols = rows.reshape(1, -1), cols.reshape(1, -1)  # [1, L] patch centres of view 2
    dh, dw = delta_h.double().unsqueeze(-1), delta_w.double().unsqueeze(-1)  # [N, 1]
    grid_h = dh * rows + delta_i.double().unsqueeze(-1) * gh  # [N, L] in view 1's rows
    grid_w = dw * cols + delta_j.double().unsqueeze(-1) * gw
    flip_w = -dw * cols + flip_delta_j.double().unsqueeze(-1) * gw  # mirrored columns
    flip = relative_flip.to(dev).bool().unsqueeze(-1)
    grid_w = torch.where(flip, flip_w, grid_w)
    grid_h, grid_w = grid_h - 0.5, grid_w - 0.5  # back from centres to the integer grid
    n, length = grid_h.shape
    half = embed_dim // 2
    scale_h = sincos_1d(half, 10 * torch.log(delta_h.double())).unsqueeze(1).expand(n, length, half)
    scale_w = sincos_1d(half, 10 * torch.log(delta_w.double())).unsqueeze(1).expand(n, length, half)
    return torch.cat(
        [sincos_1d(half, grid_h), sincos_1d(half, grid_w), scale_h, scale_w], dim=-1
    )
