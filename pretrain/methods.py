"""What differs between MAE, ConvMAE and SIM in the pretraining loop, one small object per method:

- ``dataset(grid)``: its samples (one view + mask noise, or SIM's two views + block-wise mask);
- ``loss(model, batch, device)``: one micro-batch through the model -> scalar loss;
- ``before_step(model, epoch)``: work before each optimizer step (SIM's EMA momentum update) -> the
  values to log (``{'mm': ...}``);
- ``visualize(model, samples, path)``: MAE paper Figure 2 for MAE / ConvMAE; SIM has no pixels to show;
- ``features(model, imgs, pool=None) -> [N, D]``: the encoder's image embedding from its last-block
  tokens on every patch (nothing masked), pooled as ``pool`` says: ``"mean"`` the layer-normalised mean of
  the patch tokens (class token left out), ``"cls"`` the class token after the final norm. ``None`` is the
  method's own pooling (``pools[0]``), what its official linear probe reads (with the probe's freshly
  initialised norms, whose affine is identity) and what the kNN monitor uses:
  MAE: ``"cls"`` (models_vit global_pool=False); ``"mean"`` is its fine-tuning's global pool;
  SIM: ``"mean"`` (its linear probe, configs/linprobe/dist_linprobe_sim_base.sh, passes --global_pool:
  models_vit mean + fresh fc_norm);
  ConvMAE: ``"mean"`` over the stage-3 tokens (ConvMAE's fine-tuning model: global pool + fc_norm; it
  has no class token);
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
from pretrain.optim import momentum_at
from pretrain.reconstruction_grid import save_reconstruction_grid


def _in_order(n: int, length: int, device: torch.device) -> torch.Tensor:
    """Mask noise [N, L] that keeps every token in raster order (with mask ratio 0)."""
    return torch.arange(length, dtype=torch.float32, device=device).expand(n, length)


class Method(ABC):
    """The interface the loop calls (see the module docstring); defaults: nothing before a step, nothing
    to draw, no SyncBN."""

    sync_bn = False
    pools: tuple[str, ...] = ("mean",)  # the poolings ``features`` offers, its default first
    prefix_tokens = 1  # tokens before the patch tokens in ``last_block_tokens`` (the class token)

    def __init__(self, cfg: PretrainConfig):
        self.cfg = cfg

    @abstractmethod
    def dataset(self, grid: tuple[int, int]) -> PretrainDataset: ...

    @abstractmethod
    def loss(self, model: nn.Module, batch: dict, device: torch.device) -> torch.Tensor: ...

    def last_block_tokens(self, model: nn.Module, imgs: torch.Tensor) -> torch.Tensor:
        """imgs [N, 3, H, W] -> the encoder's last-block output on every patch [N, prefix + L, D]; here a
        class-token ViT's (``ClassTokenViT``: MAE's, SIM's online one; no mask, no final norm)."""
        return model.encode_tokens(*model.embed_patches(imgs))

    def features(self, model: nn.Module, imgs: torch.Tensor, pool: str | None = None) -> torch.Tensor:
        """imgs [N, 3, H, W] -> image embedding [N, D], pooled as ``pool`` (module docstring)."""
        pool = pool or self.pools[0]
        if pool not in self.pools:
            raise ValueError(f"{type(self).__name__}.features pools {self.pools}, got pool={pool!r}: "
                             f"pass one of those")
        tokens = self.last_block_tokens(model, imgs)
        if pool == "cls":
            return model.norm(tokens[:, 0])  # LayerNorm is per token: normalise only the one kept
        pooled = tokens[:, self.prefix_tokens:].mean(1)  # [N, D]
        return F.layer_norm(pooled, pooled.shape[-1:], eps=1e-6)

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

    pools = ("cls", "mean")


class ConvMAEMethod(MAEMethod):
    """ConvMAE (Alpha-VL/ConvMAE): MAE's data, loss and pictures; masks on the stage-3 grid."""

    pools = ("mean",)  # no class token
    prefix_tokens = 0

    def last_block_tokens(self, model: nn.Module, imgs: torch.Tensor) -> torch.Tensor:
        """imgs [N, 3, H, W] -> the stage-3 block outputs [N, L, C3]."""
        grid = model.token_grid(imgs)
        noise = _in_order(imgs.shape[0], grid[0] * grid[1], imgs.device)
        *_, stages = model.forward_encoder(imgs, 0.0, noise, return_features=True)
        return stages["stage3"]


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


METHODS: dict[str, type[Method]] = {"mae": MAEMethod, "convmae": ConvMAEMethod, "sim": SIMMethod}


def build_method(cfg: PretrainConfig) -> Method:
    """The method object of ``cfg.model``'s family (the encoder table's ``family`` field)."""
    return METHODS[cfg.family](cfg)

