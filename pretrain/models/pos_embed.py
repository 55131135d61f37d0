"""Fixed 2-D sine-cosine position embeddings (MAE, ConvMAE and SIM use the same construction; SIM's
cross-view embedding is in pretrain/models/sim/geometry.py).

Half of the channels encode the row coordinate, half the column coordinate; each half is
[sin(w * p), cos(w * p)] with frequencies w_d = 1 / 10000^(d / (D/4)), as in the MAE paper.
"""
from __future__ import annotations

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
