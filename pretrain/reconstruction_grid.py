"""MAE paper Figure 2 as a PNG: masked input / reconstruction (+ visible patches) / original, one column
per image. Used by the pretraining loop (MAE, ConvMAE) and tools/visualize.py."""
from __future__ import annotations

import os

import torch
import torch.nn as nn

from pretrain.data import IMAGENET_MEAN, IMAGENET_STD


@torch.no_grad()
def save_reconstruction_grid(model: nn.Module, imgs: torch.Tensor, noise: torch.Tensor, mask_ratio: float,
                             path: str) -> None:
    """MAE paper Figure 2 as a PNG: rows masked / reconstruction (+ visible patches) / original.
    imgs [N, 3, H, W] (ImageNet-normalised), noise [N, L]."""
    from torchvision.utils import save_image

    was_training = model.training
    model.eval()
    _, pred, mask = model(imgs, mask_ratio=mask_ratio, noise=noise)  # pred [N, L, p*p*3], mask [N, L]
    pred = pred.float()
    if getattr(model, "norm_pix_loss", False):  # back from per-patch normalised pixels
        target = model.patchify(imgs)
        pred = pred * (target.var(-1, keepdim=True) + 1e-6) ** 0.5 + target.mean(-1, keepdim=True)
    grid = (imgs.shape[-2] // model.patch_size, imgs.shape[-1] // model.patch_size)
    rec = model.unpatchify(pred, grid)  # [N, 3, H, W]
    m = model.unpatchify(mask.unsqueeze(-1).expand(-1, -1, pred.shape[-1]).float(), grid)  # 1 = removed
    mean = torch.tensor(IMAGENET_MEAN, device=imgs.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=imgs.device).view(1, 3, 1, 1)
    rows = [imgs * (1 - m), imgs * (1 - m) + rec * m, imgs]
    out = torch.cat([(r * std + mean).clamp(0, 1) for r in rows])  # [3N, 3, H, W]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_image(out.cpu(), path, nrow=imgs.shape[0], padding=2)
    model.train(was_training)
