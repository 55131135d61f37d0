"""ConvMAE: masked convolution meets masked autoencoders (Gao et al., NeurIPS 2022).

Facts from the official code (Alpha-VL/ConvMAE ``models_convmae.py``, ``models_convvit.py``);
parameter names equal the official ``MaskedAutoencoderConvViT`` so its checkpoints load strictly.

The encoder is a three-stage hybrid (paper Sec. 3.1):

    imgs [N, 3, H, W]
      patch_embed1 (conv k4 s4 + LN + GELU) -> blocks1 (conv blocks)   [N, C1, H/4,  W/4 ]
      patch_embed2 (conv k2 s2 + LN + GELU) -> blocks2 (conv blocks)   [N, C2, H/8,  W/8 ]
      patch_embed3 (conv k2 s2 + LN + GELU) -> patch_embed4 (Linear)   [N, L,  C3], L = H/16 * W/16
      + fixed sin-cos pos_embed, gather visible tokens -> blocks3 (ViT blocks)
      + stage1_output_decode(stage 1) + stage2_output_decode(stage 2) at visible tokens -> norm

Block-wise masking (paper Sec. 3.2): the random mask lives on the stage-3 grid and is upsampled to
the stage-1/2 grids. Masked convolution: in every stage-1/2 block the masked positions are zeroed
right before the 5x5 depthwise convolution (official: ``attn(mask * conv1(norm1(x)))``), the only
operation that mixes positions. Every other operation in stages 1-2 is per position and every patch
embedding is a non-overlapping strided conv aligned with the 16x16 stage-3 patches, so features at
visible positions never depend on masked pixels (tested in ``tests/test_convmae.py``).

Computed at kept positions only (``conv_stages.py``): the official code runs stages 1-2 on the whole
grid although only the positions inside visible patches reach the output; here the images' visible
16x16 patches are gathered first, every per-position operation (patch embeddings, LayerNorm, 1x1
convs, MLP, ``stage*_output_decode``) runs on them, and the depthwise conv runs on the full grid
with the masked positions zero. Loss, predictions and gradients equal the official computation's
within float rounding (tested).

Differences from the official code, all shape-preserving:
- any input size divisible by the total patch size works (official asserts 224); ``pos_embed`` and
  ``decoder_pos_embed`` keep the official shape for the construction ``img_size`` and the fixed
  sin-cos table is recomputed for other grids;
- ``forward`` takes ``noise`` like MAE to make the mask reproducible;
- stage-3 and decoder blocks are timm ``Block`` (same parameter names; attention runs through
  ``F.scaled_dot_product_attention``).
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block

from .conv_stages import ConvStages, KeptLayout, PatchConv, patch_tokens
from .masking import gather_tokens, random_masking_indices, unshuffle_with_mask_tokens
from .reconstruction import patchify, reconstruction_loss, unpatchify
from .registry import register_model
from .vit_common import (
    DECODER_PREFIXES, GradCheckpointing, fixed_pos_embed, init_patch_projection, init_vit_weights, pos_embed_for_grid,
)


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
class MaskedAutoencoderConvViT(GradCheckpointing, ConvStages, nn.Module):
    """ConvMAE pretraining model: hybrid conv/ViT encoder with block-wise masking + MAE decoder."""

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_sizes: Sequence[int] = (4, 2, 2),
        in_chans: int = 3,
        embed_dims: Sequence[int] = (256, 384, 768),
        depths: Sequence[int] = (2, 2, 11),
        num_heads: int = 12,
        mlp_ratios: Sequence[float] = (4, 4, 4),
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        decoder_mlp_ratio: float | None = None,
        conv_kernel_size: int = 5,
        drop_path_rate: float = 0.0,
        norm_pix_loss: bool = False,
    ):
        super().__init__()
        # ---- encoder --------------------------------------------------------------------------
        # patch_embed1-4, blocks1/2; self.patch_size = 16: one stage-3 token covers 16x16 pixels
        dpr3 = self.add_conv_stages(in_chans, patch_sizes, embed_dims, depths, mlp_ratios, conv_kernel_size,
                                    drop_path_rate)
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.in_chans = in_chans
        self.norm_pix_loss = norm_pix_loss
        if self.img_size[0] % self.patch_size or self.img_size[1] % self.patch_size:
            raise ValueError(f"img_size {self.img_size} must be divisible by {self.patch_size}")
        self.grid_size = (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size)
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        c1, c2, c3 = self.embed_dims
        # stage-1/2 features projected to the stage-3 grid (kernel = stride = remaining downsampling)
        s1, s2 = self.stage_sides
        self.stage1_output_decode = PatchConv(c1, c3, s1)
        self.stage2_output_decode = PatchConv(c2, c3, s2)
        self.pos_embed = fixed_pos_embed(c3, self.grid_size, cls_token=False)  # [1, L, C3], fixed sin-cos
        self.blocks3 = nn.ModuleList(
            Block(c3, num_heads, mlp_ratios[2], qkv_bias=True, drop_path=d, norm_layer=norm_layer) for d in dpr3
        )
        self.norm = norm_layer(c3)

        # ---- decoder (as MAE) -----------------------------------------------------------------
        # official: the decoder blocks use mlp_ratio[0]
        decoder_mlp_ratio = mlp_ratios[0] if decoder_mlp_ratio is None else decoder_mlp_ratio
        self.decoder_embed = nn.Linear(c3, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = fixed_pos_embed(decoder_embed_dim, self.grid_size, cls_token=False)
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, decoder_mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
            for _ in range(decoder_depth)
        )
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, self.patch_size**2 * in_chans)

        self.initialize_weights()

    # ---- initialisation (official) -----------------------------------------------------------
    def initialize_weights(self) -> None:
        init_patch_projection(self.patch_embed3.proj)  # like nn.Linear, as official
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(init_vit_weights)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder part (what the released encoder-only checkpoints hold)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(DECODER_PREFIXES)}

    # ---- geometry ----------------------------------------------------------------------------
    def token_grid(self, imgs: torch.Tensor) -> tuple[int, int]:
        """Stage-3 grid (H/16, W/16) of an image batch [N, C, H, W]."""
        h, w = imgs.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"image size {h}x{w} is not divisible by the total patch size {self.patch_size}; "
                "resize or crop the input to a multiple of it"
            )
        return h // self.patch_size, w // self.patch_size

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs [N, 3, H, W] -> [N, L, 16*16*3]."""
        return patchify(imgs, self.patch_size)

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """x [N, L, 16*16*3] -> imgs [N, 3, H, W]; ``grid`` = (H/16, W/16), square when omitted."""
        return unpatchify(x, self.patch_size, grid)

    # ---- paper steps -------------------------------------------------------------------------
    def block_wise_masking(
        self, n: int, grid: tuple[int, int], mask_ratio: float, noise: torch.Tensor | None, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random mask on the stage-3 grid (MAE convention) -> ids_keep [N, K], ids_restore [N, L],
        mask [N, L] (1 = removed)."""
        length = grid[0] * grid[1]
        if noise is None:
            noise = torch.rand(n, length, device=device)
        elif noise.shape != (n, length):
            raise ValueError(f"noise must have shape {(n, length)} (batch, stage-3 tokens); got {tuple(noise.shape)}")
        return random_masking_indices(noise, mask_ratio)

    def forward_encoder(
        self,
        imgs: torch.Tensor,
        mask_ratio: float = 0.75,
        noise: torch.Tensor | None = None,
        return_features: bool = False,
    ):
        """imgs [N, 3, H, W] -> (latent [N, K, C3], mask [N, L], ids_restore [N, L][, features]).

        K = int(L * (1 - mask_ratio)) visible stage-3 tokens. With ``return_features`` also a dict:
        ``stage1`` [N, C1, H/4, W/4], ``stage2`` [N, C2, H/8, W/8] (conv-stage outputs at the visible
        positions; zero at the masked ones, which are never computed), ``stage3`` [N, K, C3] (ViT-block
        output at the visible tokens, before the multi-scale sum and ``norm``).
        """
        n = imgs.shape[0]
        grid = self.token_grid(imgs)
        ids_keep, ids_restore, mask = self.block_wise_masking(n, grid, mask_ratio, noise, imgs.device)
        side1, side2 = self.stage_sides  # 4, 2 positions per patch side on the stage-1/2 grids
        kept1, kept2 = KeptLayout.of(ids_keep, grid, side1), KeptLayout.of(ids_keep, grid, side2)

        x = patch_tokens(imgs, ids_keep, self.patch_size)  # [N, K*16*16, 3] pixels of the kept patches
        x = self.patch_embed1(x, self.patch_size)  # [N, K*4*4, C1]
        for blk in self.blocks1:
            x = self.run_block(blk, x, kept1)
        stage1 = x
        stage1_embed = self.stage1_output_decode(x, side1)  # [N, K, C3]

        x = self.patch_embed2(x, side1)  # [N, K*2*2, C2]
        for blk in self.blocks2:
            x = self.run_block(blk, x, kept2)
        stage2 = x
        stage2_embed = self.stage2_output_decode(x, side2)  # [N, K, C3]

        x = self.patch_embed3(x, side2)  # [N, K, C3]
        pos = pos_embed_for_grid(self.pos_embed, grid, self.grid_size, cls_token=False)  # [1, L, C3]
        x = self.patch_embed4(x) + gather_tokens(pos.expand(n, -1, -1), ids_keep)
        for blk in self.blocks3:
            x = self.run_block(blk, x)
        stage3 = x
        x = self.norm(x + stage1_embed + stage2_embed)
        if return_features:
            return x, mask, ids_restore, {"stage1": kept1.to_map(stage1), "stage2": kept2.to_map(stage2),
                                          "stage3": stage3}
        return x, mask, ids_restore
    def forward_decoder(self, x: torch.Tensor, ids_restore: torch.Tensor, grid: tuple[int, int] | None = None):
        """x [N, K, C3], ids_restore [N, L] -> pred [N, L, 16*16*3]; ``grid`` (h, w) of the L tokens,
        the construction grid when omitted."""
        if grid is None:
            if ids_restore.shape[1] != self.grid_size[0] * self.grid_size[1]:
                raise ValueError(
                    f"{ids_restore.shape[1]} tokens do not match the construction grid {self.grid_size}; "
                    "pass grid=(H/16, W/16) of the input"
                )
            grid = self.grid_size
        x = self.decoder_embed(x)  # [N, K, D]
        x = unshuffle_with_mask_tokens(x, self.mask_token, ids_restore)  # [N, L, D]
        x = x + pos_embed_for_grid(self.decoder_pos_embed, grid, self.grid_size, cls_token=False)
        for blk in self.decoder_blocks:
            x = self.run_block(blk, x)
        return self.decoder_pred(self.decoder_norm(x))

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """imgs [N, 3, H, W], pred [N, L, 16*16*3], mask [N, L] (1 = removed) -> MSE on removed patches."""
        return reconstruction_loss(imgs, pred, mask, self.patch_size, self.norm_pix_loss)

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise: torch.Tensor | None = None):
        """imgs [N, 3, H, W] -> (loss, pred [N, L, 16*16*3], mask [N, L] with 1 = removed)."""
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore, self.token_grid(imgs))
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask

# ---------------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------------
@register_model
def convmae_tiny(**kwargs) -> MaskedAutoencoderConvViT:
    """CPU test/demo size (not a paper model)."""
    cfg = dict(
        embed_dims=(32, 48, 64), depths=(1, 1, 2), num_heads=4, mlp_ratios=(2, 2, 2),
        decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4,
    )
    return MaskedAutoencoderConvViT(**{**cfg, **kwargs})


@register_model
def convmae_small(**kwargs) -> MaskedAutoencoderConvViT:
    """ConvMAE-S. Source: Alpha-VL/FastConvMAE models_fastconvmae.py
    ``fastconvmae_convvit_small_patch16_dec512d8b`` (dims 128/256/384, depths 2/2/11, 6 heads);
    Alpha-VL/ConvMAE itself only releases the base definition."""
    cfg = dict(embed_dims=(128, 256, 384), depths=(2, 2, 11), num_heads=6, mlp_ratios=(4, 4, 4))
    return MaskedAutoencoderConvViT(**{**cfg, **kwargs})


@register_model
def convmae_base(**kwargs) -> MaskedAutoencoderConvViT:
    """ConvMAE-B = official ``convmae_convvit_base_patch16`` (Alpha-VL/ConvMAE models_convmae.py):
    dims 256/384/768, depths 2/2/11, 12 heads, mlp 4, decoder 512-d x 8 blocks x 16 heads."""
    return MaskedAutoencoderConvViT(**kwargs)


@register_model
def convmae_large(**kwargs) -> MaskedAutoencoderConvViT:
    """ConvMAE-L (ConvMAE-v2 sizes). Not in Alpha-VL/ConvMAE; taken from a public derivative of the
    official code (``convmae_convvit_large_patch16_dec512d8b``-style factory): dims 384/768/1024,
    depths 2/2/23, 16 heads, mlp ratios 8/8/4, decoder mlp ratio = mlp_ratios[0] (8) as the official
    class does. Check against the released ConvMAE-v2 checkpoint before relying on it."""
    cfg = dict(embed_dims=(384, 768, 1024), depths=(2, 2, 23), num_heads=16, mlp_ratios=(8, 8, 4))
    return MaskedAutoencoderConvViT(**{**cfg, **kwargs})


@register_model
def convmae_huge(**kwargs) -> MaskedAutoencoderConvViT:
    """ConvMAE-H (ConvMAE-v2 sizes), same source and caveat as ``convmae_large``: dims 768/1024/1280,
    depths 2/2/31, 16 heads, mlp ratios 8/8/4."""
    cfg = dict(embed_dims=(768, 1024, 1280), depths=(2, 2, 31), num_heads=16, mlp_ratios=(8, 8, 4))
    return MaskedAutoencoderConvViT(**{**cfg, **kwargs})
