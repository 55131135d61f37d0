"""SIM's cross-view geometry: where view 2's patches lie in view 1's patch grid.

OpenGVLab/Siamese-Image-Modeling main_pretrain.py ``DataAugmentationForSIM`` returns the crop-to-crop
numbers ``rel_pos_21``; util/pos_embed.py ``get_2d_sincos_pos_embed_relative`` embeds view 2's patch
centres in view 1's coordinates for the predictor's queries.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..pos_embed import sincos_1d


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


def sim_relative_crop(box1: torch.Tensor, box2: torch.Tensor, flip1: torch.Tensor, flip2: torch.Tensor) -> RelativeCrop:
    """Boxes [N, 4] (top, left, height, width as fractions of the unflipped image, what
    ``SIMTransform`` reports) and flips [N] -> the official ``rel_pos_21`` (crop parameters are taken in
    the flipped image, width 1)."""
    def flipped(box, flip):  # left edge in the flipped image: 1 - left - width
        left = torch.where(flip.bool(), 1 - box[:, 1] - box[:, 3], box[:, 1])
        return torch.stack([box[:, 0], left, box[:, 2], box[:, 3]], dim=1)

    return relative_crop(flipped(box1, flip1), flipped(box2, flip2), flip1, flip2, torch.ones(box1.shape[0]))


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
