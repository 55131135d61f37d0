"""ViT pieces shared by MAE, SIM and ConvMAE: the official initialisation, fixed sin-cos position
tables for any grid, one activation-checkpointing switch (``GradCheckpointing``), the embedding steps of
a class-token ViT encoder (``ClassTokenViT``: MAE's, SIM's online one) and the key prefixes an
encoder-only checkpoint lacks (``DECODER_PREFIXES``)."""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from .pos_embed import get_2d_sincos_pos_embed

# keys of a pretraining model that an encoder-only checkpoint lacks (MAE, ConvMAE)
DECODER_PREFIXES = ("decoder_", "mask_token")


def run_block(block: nn.Module, *args: torch.Tensor, checkpointing: bool = False) -> torch.Tensor:
    """``block(*args)``, with activation checkpointing while training with gradients enabled."""
    if checkpointing and block.training and torch.is_grad_enabled():
        return checkpoint(block, *args, use_reentrant=False)
    return block(*args)


class GradCheckpointing:
    """Mixin: ``set_grad_checkpointing(True)`` makes ``run_block`` / ``run_blocks`` recompute block
    activations in the backward pass (saves memory, costs compute); training with grad only."""

    grad_checkpointing: bool = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def run_block(self, blk: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        return run_block(blk, *args, checkpointing=self.grad_checkpointing)

    def run_blocks(self, blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for blk in blocks:
            x = self.run_block(blk, x)
        return x


class ClassTokenViT(GradCheckpointing):
    """Mixin for a ViT encoder with a class token (MAE's, SIM's online one): ``patch_embed``,
    ``pos_embed`` [1, 1 + L, D] (class slot first) built for ``grid_size``, ``cls_token``, ``blocks``.
    Between ``embed_patches`` and ``encode_tokens`` the caller may drop or replace tokens (masking)."""

    @property
    def patch_size(self) -> int:
        return self.patch_embed.patch_size[0]

    def embed_patches(self, imgs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """imgs [N, 3, H, W] -> (patch tokens plus their position [N, L, D], the position table of this
        grid [1, 1 + L, D])."""
        grid = (imgs.shape[-2] // self.patch_size, imgs.shape[-1] // self.patch_size)
        pos = pos_embed_for_grid(self.pos_embed, grid, self.grid_size)
        return self.patch_embed(imgs) + pos[:, 1:], pos

    def encode_tokens(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Tokens [N, K, D] from ``embed_patches`` (all, or those kept) and its ``pos`` -> the last
        block's output [N, 1 + K, D], class token (plus its position) first; no final norm."""
        cls = (self.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)
        return self.run_blocks(self.blocks, torch.cat([cls, x], dim=1))


def init_vit_weights(m: nn.Module) -> None:
    """The official init: xavier-uniform Linear weights with zero bias, LayerNorm (1, 0)."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def init_patch_projection(proj: nn.Conv2d) -> None:
    """Initialise a patch projection like an nn.Linear over the flattened patch (official)."""
    w = proj.weight.data
    nn.init.xavier_uniform_(w.view(w.shape[0], -1))


def fixed_pos_embed(embed_dim: int, grid: tuple[int, int], cls_token: bool = True) -> nn.Parameter:
    """Non-trainable sin-cos embedding [1, (1 +) gh*gw, D] (a zero row for the cls token when
    ``cls_token``), an nn.Parameter with requires_grad=False as in the official code so that it is in
    the state dict."""
    pe = get_2d_sincos_pos_embed(embed_dim, grid, cls_token=cls_token).unsqueeze(0)
    return nn.Parameter(pe, requires_grad=False)


def pos_embed_for_grid(pos_embed: torch.Tensor, grid: tuple[int, int], built_grid: tuple[int, int],
                       cls_token: bool = True) -> torch.Tensor:
    """The stored embedding when the input grid is the one it was built for, else a fresh sin-cos
    embedding of ``grid`` (both fixed functions of position, so nothing is interpolated)."""
    if tuple(grid) == tuple(built_grid):
        return pos_embed
    pe = get_2d_sincos_pos_embed(pos_embed.shape[-1], grid, cls_token=cls_token)
    return pe.to(device=pos_embed.device, dtype=pos_embed.dtype).unsqueeze(0)
