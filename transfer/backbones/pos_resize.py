"""Absolute position embeddings on another token grid (timm ``resample_abs_pos_embed``).

Semantics of detectron2 ``get_abs_pos``: bicubic, align_corners=False, no antialiasing (so
down-sizing matches detectron2 too), the class-token slot dropped for use on feature maps.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed


def infer_grid(num_positions: int, num_prefix_tokens: int | None = None) -> tuple[tuple[int, int], int]:
    """Square grid and prefix count of a table with ``num_positions`` rows -> ((g, g), prefix).

    With ``num_prefix_tokens`` None it is guessed: 0 when the count is a square, 1 when count - 1 is."""
    candidates = (0, 1) if num_prefix_tokens is None else (num_prefix_tokens,)
    for prefix in candidates:
        g = math.isqrt(num_positions - prefix)
        if g * g == num_positions - prefix:
            return (g, g), prefix
    raise ValueError(
        f"position table with {num_positions} rows is not a square grid"
        + ("" if num_prefix_tokens is None else f" plus {num_prefix_tokens} prefix token(s)")
        + "; pass the grid size explicitly"
    )


def resize_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int] | None = None,
    num_prefix_tokens: int = 1,
    new_num_prefix_tokens: int | None = None,
) -> torch.Tensor:
    """pos_embed [1, prefix + gh*gw, D] -> [1, new_prefix + nh*nw, D] (bicubic on the grid part).

    Prefix (class-token) rows are kept; with ``new_num_prefix_tokens`` 0 they are dropped, and
    zero rows are prepended when it is larger than ``num_prefix_tokens``."""
    if old_grid is None:
        old_grid, _ = infer_grid(pos_embed.shape[1], num_prefix_tokens)
    new_num_prefix_tokens = num_prefix_tokens if new_num_prefix_tokens is None else new_num_prefix_tokens
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    if tuple(old_grid) != tuple(new_grid):
        if grid.shape[1] == new_grid[0] * new_grid[1] and new_grid[0] == new_grid[1]:
            # timm returns its input unchanged when the row count matches a square target, which is
            # wrong for a non-square source grid of the same size: interpolate directly
            d = grid.shape[-1]
            g = grid.float().reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2)
            g = F.interpolate(g, size=tuple(new_grid), mode="bicubic", align_corners=False)
            grid = g.permute(0, 2, 3, 1).reshape(1, -1, d).to(grid.dtype)
        else:
            grid = resample_abs_pos_embed(
                grid, list(new_grid), list(old_grid), num_prefix_tokens=0, antialias=False
            )
    if new_num_prefix_tokens <= num_prefix_tokens:
        prefix = prefix[:, :new_num_prefix_tokens]
    else:
        extra = new_num_prefix_tokens - num_prefix_tokens
        prefix = torch.cat([prefix, prefix.new_zeros(1, extra, prefix.shape[-1])], dim=1)
    return torch.cat([prefix, grid], dim=1)


def abs_pos_for_grid(
    pos_embed: torch.Tensor, hw: tuple[int, int], num_prefix_tokens: int = 1,
    old_grid: tuple[int, int] | None = None,
) -> torch.Tensor:
    """pos_embed [1, prefix + gh*gw, D] -> [1, h, w, D] for a feature map of h x w tokens
    (the prefix rows dropped; the stored grid is square unless ``old_grid`` says otherwise)."""
    h, w = hw
    pe = resize_pos_embed(pos_embed, (h, w), old_grid, num_prefix_tokens, new_num_prefix_tokens=0)
    return pe.reshape(1, h, w, -1)
