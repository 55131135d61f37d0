"""Token masking as pure index computations (no data-dependent shapes).

The MAE convention: ``noise`` [N, L] decides the mask; tokens are sorted by ascending noise and the
first ``len_keep = int(L * (1 - mask_ratio))`` are kept. ``mask`` is 1 where a token is removed.
"""
from __future__ import annotations

import torch


def num_visible(num_tokens: int, mask_ratio: float) -> int:
    return int(num_tokens * (1 - mask_ratio))


def random_masking_indices(
    noise: torch.Tensor, mask_ratio: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """noise [N, L] -> (ids_keep [N, len_keep], ids_restore [N, L], mask [N, L] with 1 = removed)."""
    n, length = noise.shape
    len_keep = num_visible(length, mask_ratio)
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    mask = torch.ones(n, length, device=noise.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)  # back to the original token order
    return ids_keep, ids_restore, mask


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """x [N, L, D], ids [N, K] -> [N, K, D]."""
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def unshuffle_with_mask_tokens(
    x_visible: torch.Tensor, mask_token: torch.Tensor, ids_restore: torch.Tensor
) -> torch.Tensor:
    """Append mask tokens to the visible tokens and restore the original order.

    x_visible [N, K, D], mask_token [1, 1, D], ids_restore [N, L] -> [N, L, D].
    """
    n, k, d = x_visible.shape
    mask_tokens = mask_token.to(x_visible.dtype).expand(n, ids_restore.shape[1] - k, d)
    return gather_tokens(torch.cat([x_visible, mask_tokens], dim=1), ids_restore)
