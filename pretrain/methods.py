"""What differs between MAE, ConvMAE and SIM in the pretraining loop, one small object per method:

- ``dataset(grid)``: its samples (one view + mask noise, or SIM's two views + block-wise mask);
- ``loss(model, batch, device)``: one micro-batch through the model -> scalar loss;
- ``before_step(model, epoch)``: work before each optimizer step (SIM's EMA momentum update) -> the
  values to log (``{'mm': ...}``);
- ``visualize(model, samples, path)``: MAE paper Figure 2 for MAE / ConvMAE; SIM has no pixels to show;
- ``features(model, imgs) -> [N, D]``: the encoder's image embedding for the kNN monitor, what the
  official linear probe reads (with the probe's freshly initialised norms, whose affine is identity):
  MAE: the class token of the unmasked encoder output after its final norm (models_vit global_pool=False);
  SIM: the mean of the patch tokens of the unmasked online encoder, layer-normalised (its linear probe,
  configs/linprobe/dist_linprobe_sim_base.sh, passes --global_pool: models_vit mean + fresh fc_norm);
  ConvMAE: the average of the stage-3 tokens, layer-normalised (ConvMAE's fine-tuning model: global
  pool + fc_norm; it has no class token);
- ``sync_bn``: convert BatchNorm to SyncBatchNorm under DDP (SIM's projector/predictor, as official).

``build_method(cfg)`` picks the object from the encoder table's ``family`` (pretrain/encoders.py).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn as nn
import torch.nn.functional as F

from pretrain.config import PretrainConfig
from pretrain.data import MAETransform, PretrainDataset, to_model_input
from pretrain.models.sim.geometry import sim_relative_crop
from pretrain.models.sim.views import SIMTransform
from pretrain.models.vit_common import pos_embed_for_grid
from pretrain.optim import momentum_at
from pretrain.reconstruction_grid import save_reconstruction_grid


def _in_order(n: int, length: int, device: torch.device) -> torch.Tensor:
    """Mask noise [N, L] that keeps every token in raster order (with mask ratio 0)."""
    return torch.arange(length, dtype=torch.float32, device=device).expand(n, length)


class Method(ABC):
    """The interface the loop calls (see the module docstring); defaults: nothing before a step, nothing
    to draw, no SyncBN."""

    sync_bn = False

    def __init__(self, cfg: PretrainConfig):
        self.cfg = cfg

    @abstractmethod
    def dataset(self, grid: tuple[int, int]) -> PretrainDataset: ...

    @abstractmethod
    def loss(self, model: nn.Module, batch: dict, device: torch.device) -> torch.Tensor: ...

    @abstractmethod
    def features(self, model: nn.Module, imgs: torch.Tensor) -> torch.Tensor: ...

    def before_step(self, model: nn.Module, epoch: float) -> dict[str, float]:
        return {}

    def visual_samples(self, dataset: PretrainDataset, num: int) -> list[dict]:
        """Samples for ``visualize`` (none: the method draws nothing)."""
        return []

    def visualize(self, model: nn.Module, samples: list[dict], path: str, device: torch.device) -> None:
        """Draw what the model makes of ``samples`` into the PNG ``path``."""


class MAEMethod(Method):
    """MAE (facebookresearch/mae): one view, per-sample mask noise, pixel reconstruction."""

    def dataset(self, grid: tuple[int, int]) -> PretrainDataset:
        cfg = self.cfg
        return PretrainDataset(cfg.data, MAETransform(cfg.img_size, cfg.crop_scale, cfg.hflip), cfg.seed, "mae", grid)

    def loss(self, model: nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
        imgs = to_model_input(batch["image"], device)
        loss, _, _ = model(imgs, mask_ratio=self.cfg.mask_ratio, noise=batch["noise"].to(device, non_blocking=True))
        return loss

    def visual_samples(self, dataset: PretrainDataset, num: int) -> list[dict]:
        """The first ``num`` samples of epoch 0: the same images and masks in every grid."""
        return [dataset[(0, i)] for i in range(min(num, len(dataset)))]

    def visualize(self, model: nn.Module, samples: list[dict], path: str, device: torch.device) -> None:
        imgs = to_model_input(torch.stack([s["image"] for s in samples]), device)
        noise = torch.stack([s["noise"] for s in samples]).to(device)
        save_reconstruction_grid(model, imgs, noise, self.cfg.mask_ratio, path)

    def features(self, model: nn.Module, imgs: torch.Tensor) -> torch.Tensor:
        """imgs [N, 3, H, W] -> class token of the unmasked, normed encoder output [N, D]."""
        grid = (imgs.shape[-2] // model.patch_size, imgs.shape[-1] // model.patch_size)
        latent, _, _ = model.forward_encoder(imgs, 0.0, _in_order(imgs.shape[0], grid[0] * grid[1], imgs.device))
        return latent[:, 0]


class ConvMAEMethod(MAEMethod):
    """ConvMAE (Alpha-VL/ConvMAE): MAE's data, loss and pictures; masks on the stage-3 grid."""

    def features(self, model: nn.Module, imgs: torch.Tensor) -> torch.Tensor:
        """imgs [N, 3, H, W] -> layer-normalised mean of the stage-3 block outputs [N, C3]."""
        grid = model.token_grid(imgs)
        noise = _in_order(imgs.shape[0], grid[0] * grid[1], imgs.device)
        *_, stages = model.forward_encoder(imgs, 0.0, noise, return_features=True)
        pooled = stages["stage3"].mean(1)  # [N, C3]
        return F.layer_norm(pooled, pooled.shape[-1:], eps=1e-6)


class SIMMethod(Method):
    """SIM (OpenGVLab/Siamese-Image-Modeling): two views, block-wise mask, EMA target branch; nothing to
    draw (it predicts features of another view, not pixels)."""

    sync_bn = True

    def dataset(self, grid: tuple[int, int]) -> PretrainDataset:
        cfg = self.cfg
        return PretrainDataset(cfg.data, SIMTransform(cfg.img_size, cfg.crop_min), cfg.seed, "sim", grid,
                               cfg.num_mask_patches, cfg.min_mask_patches)

    def loss(self, model: nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
        rel = sim_relative_crop(batch["box1"], batch["box2"], batch["flip1"], batch["flip2"])
        rel = type(rel)(*(t.to(device, non_blocking=True) for t in rel))
        x1, x2 = to_model_input(batch["x1"], device), to_model_input(batch["x2"], device)
        mask = batch["mask"].to(device, non_blocking=True)
        # the EMA update is done by before_step (outside a compiled graph), hence update_mm=False
        loss, _ = model(x1, x2, rel, 0.0, False, mask=mask, num_masked=self.cfg.num_mask_patches)
        return loss

    def before_step(self, model: nn.Module, epoch: float) -> dict[str, float]:
        """EMA update before the target pass of the step's first micro-batch (official) -> {'mm': m}."""
        mm = momentum_at(epoch, self.cfg.mm, self.cfg.epochs, self.cfg.mm_schedule)
        model.update_momentum(mm)
        return {"mm": mm}

    def features(self, model: nn.Module, imgs: torch.Tensor) -> torch.Tensor:
        """imgs [N, 3, H, W] -> layer-normalised mean patch token of the online encoder on all patches [N, D]."""
        grid = (imgs.shape[-2] // model.patch_size, imgs.shape[-1] // model.patch_size)
        pos = pos_embed_for_grid(model.pos_embed, grid, model.grid_size)  # [1, 1 + L, D]
        x = model.patch_embed(imgs) + pos[:, 1:]  # [N, L, D]
        cls = (model.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)
        x = model.run_blocks(model.blocks, torch.cat([cls, x], dim=1))  # [N, 1 + L, D]
        pooled = x[:, 1:].mean(1)  # [N, D], class token left out as official
        return F.layer_norm(pooled, pooled.shape[-1:], eps=1e-6)


METHODS: dict[str, type[Method]] = {"mae": MAEMethod, "convmae": ConvMAEMethod, "sim": SIMMethod}


def build_method(cfg: PretrainConfig) -> Method:
    """The method object of ``cfg.model``'s family (the encoder table's ``family`` field)."""
    return METHODS[cfg.family](cfg)

