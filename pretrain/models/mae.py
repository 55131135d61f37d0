"""MAE: Masked Autoencoders Are Scalable Vision Learners (He et al., 2022).

Facts from facebookresearch/mae ``models_mae.py``: ViT encoder on the visible 25% of the patches
(+ cls token) with a final LayerNorm, a light ViT decoder that sees encoded visible tokens plus a
shared mask token at the removed positions, fixed 2-D sin-cos position embeddings in both, and an
MSE loss on the removed patches only. Parameter names equal the official ones, so its checkpoints
load with ``strict=True``.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block

from . import reconstruction
from .masking import gather_tokens, random_masking_indices, unshuffle_with_mask_tokens
from .registry import register_model
from .vit_common import (
    DECODER_PREFIXES, ClassTokenViT, fixed_pos_embed, init_patch_projection, init_vit_weights, pos_embed_for_grid,
)


class MaskedAutoencoderViT(ClassTokenViT, nn.Module):
    """MAE with a ViT encoder and decoder (timm ``Block``: attention via scaled_dot_product_attention).

    ``img_size`` fixes the grid the stored ``pos_embed`` is built for; other sizes divisible by the
    patch size work too (their sin-cos embedding is computed on the fly).
    ``encoder_mask_tokens=True`` is the paper's ablation (Table 1c, "encoder w/ [M]"): the encoder
    runs on all tokens, removed ones replaced by a learned encoder mask token (an extra parameter
    ``encoder_mask_token``), and the decoder receives all tokens.
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        norm_pix_loss: bool = False,
        encoder_mask_tokens: bool = False,
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        self.norm_pix_loss = norm_pix_loss
        self.encoder_mask_tokens = encoder_mask_tokens
        self.grad_checkpointing = grad_checkpointing

        # encoder
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, strict_img_size=False)
        self.grid_size = tuple(self.patch_embed.grid_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = fixed_pos_embed(embed_dim, self.grid_size)  # [1, 1 + L, D]
        self.blocks = nn.ModuleList(
            [Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer) for _ in range(depth)]
        )
        self.norm = norm_layer(embed_dim)
        if encoder_mask_tokens:
            self.encoder_mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))

        # decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = fixed_pos_embed(decoder_embed_dim, self.grid_size)
        self.decoder_blocks = nn.ModuleList(
            [
                Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
                for _ in range(decoder_depth)
            ]
        )
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * in_chans, bias=True)

        self.initialize_weights()

    def initialize_weights(self) -> None:
        init_patch_projection(self.patch_embed.proj)
        # timm's trunc_normal_(std=.02) is effectively normal_(std=.02) (cutoff 2.0), as official
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        if self.encoder_mask_tokens:
            nn.init.normal_(self.encoder_mask_token, std=0.02)
        self.apply(init_vit_weights)

    # ---------------------------------------------------------------- checkpoints
    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder part (what the released ``mae_pretrain_vit_*.pth`` files hold)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(DECODER_PREFIXES)}

    # ---------------------------------------------------------------- paper steps
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs [N, 3, H, W] -> [N, L, p*p*3]."""
        return reconstruction.patchify(imgs, self.patch_size)

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """x [N, L, p*p*3] -> imgs [N, 3, H, W]; ``grid`` (H/p, W/p), square when omitted."""
        return reconstruction.unpatchify(x, self.patch_size, grid)

    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """imgs [N, 3, H, W] -> (latent [N, 1 + len_keep, D] (or [N, 1 + L, D] with encoder mask
        tokens), mask [N, L] with 1 = removed, ids_restore [N, L])."""
        x, pos = self.embed_patches(imgs)  # [N, L, D], [1, 1 + L, D]
        n, length, _ = x.shape
        if noise is None:
            noise = torch.rand(n, length, device=x.device)
        ids_keep, ids_restore, mask = random_masking_indices(noise, mask_ratio)
        if self.encoder_mask_tokens:  # all L tokens, removed ones replaced by [M] + position
            m = self.encoder_mask_token.to(x.dtype) + pos[:, 1:]
            x = torch.where(mask.unsqueeze(-1).bool(), m, x)  # [N, L, D]
        else:
            x = gather_tokens(x, ids_keep)  # [N, len_keep, D]
        return self.norm(self.encode_tokens(x, pos)), mask, ids_restore

    def forward_decoder(
        self, x: torch.Tensor, ids_restore: torch.Tensor, grid: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """latent [N, 1 + K, D] -> pred [N, L, p*p*3] (cls token removed)."""
        x = self.decoder_embed(x)  # [N, 1 + K, Dd]
        if not self.encoder_mask_tokens:  # only visible tokens came in: add [M] and unshuffle
            x = torch.cat([x[:, :1], unshuffle_with_mask_tokens(x[:, 1:], self.mask_token, ids_restore)], dim=1)
        x = x + pos_embed_for_grid(self.decoder_pos_embed, grid or self.grid_size, self.grid_size)
        x = self.run_blocks(self.decoder_blocks, x)
        x = self.decoder_pred(self.decoder_norm(x))
        return x[:, 1:]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """imgs [N, 3, H, W], pred [N, L, p*p*3], mask [N, L] -> mean MSE over removed patches."""
        return reconstruction.reconstruction_loss(imgs, pred, mask, self.patch_size, self.norm_pix_loss)

    def forward(
        self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """imgs [N, 3, H, W]; noise [N, L] decides the mask (ascending, first L*(1-ratio) kept).
        Returns (loss, pred [N, L, p*p*3], mask [N, L] with 1 = removed)."""
        grid = (imgs.shape[-2] // self.patch_size, imgs.shape[-1] // self.patch_size)
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore, grid)
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask


def _mae(**kwargs) -> MaskedAutoencoderViT:
    cfg = dict(decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0)
    cfg.update(kwargs)
    return MaskedAutoencoderViT(**cfg)


@register_model
def mae_vit_base_patch16(**kwargs) -> MaskedAutoencoderViT:
    """ViT-B/16 encoder, decoder 512-d x 8 blocks (official mae_vit_base_patch16_dec512d8b)."""
    return _mae(**{**dict(patch_size=16, embed_dim=768, depth=12, num_heads=12), **kwargs})


@register_model
def mae_vit_large_patch16(**kwargs) -> MaskedAutoencoderViT:
    return _mae(**{**dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16), **kwargs})


@register_model
def mae_vit_huge_patch14(**kwargs) -> MaskedAutoencoderViT:
    return _mae(**{**dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16), **kwargs})


@register_model
def mae_vit_tiny_patch16(**kwargs) -> MaskedAutoencoderViT:
    """CPU test/demo size: 96-d x 2 blocks encoder, 64-d x 1 block decoder, 64x64 input (4x4 grid)."""
    cfg = dict(
        img_size=64, patch_size=16, embed_dim=96, depth=2, num_heads=3,
        decoder_embed_dim=64, decoder_depth=1, decoder_num_heads=2,
    )
    return _mae(**{**cfg, **kwargs})
