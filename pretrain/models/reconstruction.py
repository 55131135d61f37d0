"""Pixel reconstruction target shared by MAE and ConvMAE: patchify/unpatchify and the masked MSE."""
from __future__ import annotations

import torch


def patchify(imgs: torch.Tensor, p: int) -> torch.Tensor:
    """imgs [N, 3, H, W] -> [N, L, p*p*3] with L = (H/p)*(W/p), the official channel order."""
    n, c, h, w = imgs.shape
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}")
    x = imgs.reshape(n, c, h // p, p, w // p, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(x: torch.Tensor, p: int, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """x [N, L, p*p*3] -> imgs [N, 3, H, W]; ``grid`` = (H/p, W/p), square when omitted."""
    n, length, _ = x.shape
    if grid is None:
        side = int(length**0.5)
        if side * side != length:
            raise ValueError(f"{length} tokens do not form a square grid; pass grid=(h, w)")
        grid = (side, side)
    gh, gw = grid
    x = x.reshape(n, gh, gw, p, p, -1)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(n, -1, gh * p, gw * p)


def reconstruction_loss(
    imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, p: int, norm_pix_loss: bool
) -> torch.Tensor:
    """Mean squared error on removed patches only (MAE paper, Sec. 3 "Reconstruction target").

    imgs [N, 3, H, W], pred [N, L, p*p*3], mask [N, L] with 1 = removed. With ``norm_pix_loss`` the
    target is each patch normalised by its own mean and variance.
    """
    target = patchify(imgs, p)
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    loss = ((pred.float() - target.float()) ** 2).mean(dim=-1)  # [N, L], mean loss per patch
    return (loss * mask).sum() / mask.sum()
