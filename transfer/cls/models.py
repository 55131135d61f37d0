"""Classification models with the official fine-tuning models' parameter names, so released
fine-tuned files load strictly.

- MAE / SIM ViTs: facebookresearch/mae ``models_vit.VisionTransformer`` is timm's VisionTransformer
  with ``global_pool`` (mean of the patch tokens, then ``fc_norm``; the final ``norm`` deleted) or the
  class token after ``norm``. timm 1.0's ``VisionTransformer(global_pool='avg', fc_norm=True)`` has
  exactly these parameters (its ``norm`` is an Identity) and this forward, so we use it directly.
  OpenGVLab/Siamese-Image-Modeling ``models_vit.py`` differs only in (a) ``pos_embed`` being a fixed
  buffer-like parameter (``requires_grad=False``: not trained, not in the optimizer) and (b) optional
  layer scale ``ls1/ls2.gamma``, off in the released recipe (``--init_values`` 1.0 -> None); its
  attention subtracts the row max before softmax (the same function). ``init_values`` exposes (b).
- ConvMAE-B: Alpha-VL/ConvMAE ``models_convvit.ConvViT`` / ``vision_transformer.ConvViT``: the
  pretraining encoder's stages (``patch_embed1-3``, ``blocks1/2`` conv blocks, ``patch_embed4``,
  ``blocks3`` ViT blocks) with a learned ``pos_embed`` [1, L, C3] (no class token), then the mean of
  all tokens + ``fc_norm``, or ``norm`` and the first token (``global_pool=False``, as official).

``forward_features(x)`` returns the pooled pre-head features [N, D] (as the official
``forward_features``); ``forward(x) = head(forward_features(x))``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Sequence

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from timm.models.vision_transformer import VisionTransformer as TimmVisionTransformer

from pretrain.encoders import encoder
from pretrain.models import build_model
from pretrain.models.conv_stages import ConvStages, GridLayout
from pretrain.models.vit_common import GradCheckpointing

LayerNorm6 = partial(nn.LayerNorm, eps=1e-6)


# ------------------------------------------------------------------------------------------ sizes
@dataclass(frozen=True)
class TrunkSize:
    """The trunk dimensions of an encoder, read off its pretraining model (one place per fact)."""

    family: str  # "mae", "sim" or "convmae"
    img_size: int
    patch_size: int | tuple[int, ...]
    embed_dim: int | tuple[int, ...]
    depth: int | tuple[int, ...]
    num_heads: int
    mlp_ratio: float | tuple[float, ...]


def trunk_size(encoder_name: str) -> TrunkSize:
    """Dimensions of encoder ``encoder_name`` (``pretrain.encoders``), from its pretraining model built
    on the meta device (no memory, no init)."""
    entry = encoder(encoder_name)  # a retired or unknown name is refused with the known ones
    with torch.device("meta"):
        model = build_model(encoder_name)
    if entry.family == "convmae":  # conv stages 1-2, ViT stage 3
        blocks = (model.blocks1, model.blocks2, model.blocks3)
        ratios = tuple(b[0].mlp.fc1.weight.shape[0] / dim for b, dim in zip(blocks, model.embed_dims))  # hidden / dim
        return TrunkSize("convmae", model.img_size[0], model.patch_sizes, model.embed_dims,
                         tuple(len(b) for b in blocks), model.blocks3[0].attn.num_heads, ratios)
    first = model.blocks[0]
    dim = model.cls_token.shape[-1]
    return TrunkSize(entry.family, model.patch_embed.img_size[0],
                     model.patch_embed.patch_size[0], dim, len(model.blocks), first.attn.num_heads,
                     first.mlp.fc1.out_features / dim)


# ------------------------------------------------------------------------------------------ ViT
class VisionTransformer(TimmVisionTransformer):
    """Official ``models_vit.VisionTransformer`` (see module doc). ``arch`` and ``num_prefix_tokens``
    tell ``transfer.backbones.convert_state_dict`` how to map pretraining files onto it."""

    arch = "vit"

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """images [N, 3, H, W] -> tokens [N, 1 + L, D] after the last block (and ``norm``, an Identity
        with global pooling)."""
        return super().forward_features(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """images -> pooled features [N, D]: fc_norm(mean of patch tokens) or the normed class token."""
        return self.forward_head(self.forward_tokens(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def build_vit(size: TrunkSize, num_classes: int, global_pool: bool, drop_path_rate: float,
              img_size: int, init_values: float | None = None) -> VisionTransformer:
    model = VisionTransformer(
        img_size=img_size, patch_size=size.patch_size, embed_dim=size.embed_dim, depth=size.depth,
        num_heads=size.num_heads, mlp_ratio=size.mlp_ratio, qkv_bias=True, norm_layer=LayerNorm6,
        num_classes=num_classes, global_pool="avg" if global_pool else "token", fc_norm=global_pool,
        drop_path_rate=drop_path_rate, init_values=init_values,
    )
    if size.family == "sim":  # SIM models_vit.py: pos_embed = nn.Parameter(..., requires_grad=False)
        model.pos_embed.requires_grad_(False)
    return model


# ------------------------------------------------------------------------------------------ ConvMAE
class ConvViT(GradCheckpointing, ConvStages, nn.Module):
    """Official ConvMAE fine-tuning model ``ConvViT`` (parameter names equal), built from our ConvMAE
    stage modules (``pretrain.models.conv_stages``). images [N, 3, H, W] (H, W divisible by 16) ->
    logits [N, num_classes]. ``set_grad_checkpointing()`` as timm's ViT."""

    arch = "convmae"
    num_prefix_tokens = 0

    def __init__(self, img_size: int = 224, patch_sizes: Sequence[int] = (4, 2, 2),
                 embed_dims: Sequence[int] = (256, 384, 768), depths: Sequence[int] = (2, 2, 11),
                 num_heads: int = 12, mlp_ratios: Sequence[float] = (4, 4, 4), num_classes: int = 1000,
                 global_pool: bool = True, drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        # patch_embed1-4, blocks1/2 (official names); official stochastic depth over all blocks
        dpr3 = self.add_conv_stages(3, patch_sizes, embed_dims, depths, mlp_ratios, 5, drop_path_rate)
        c3 = self.embed_dims[2]
        self.global_pool = global_pool
        self.grid = (img_size // self.patch_size,) * 2
        self.num_features = c3
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], c3))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks3 = nn.ModuleList(
            Block(c3, num_heads, mlp_ratios[2], qkv_bias=True, proj_drop=drop_rate, drop_path=d, norm_layer=LayerNorm6)
            for d in dpr3)
        if global_pool:
            self.fc_norm = LayerNorm6(c3)
        else:
            self.norm = LayerNorm6(c3)
        self.head = nn.Linear(c3, num_classes) if num_classes > 0 else nn.Identity()
        trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """Official: trunc-normal(0.02) Linear weights, zero biases, LayerNorm (1, 0)."""
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def _conv_stage(self, x: torch.Tensor, blocks: nn.ModuleList) -> torch.Tensor:
        """Conv blocks on every position of a map: x [N, C, h, w] -> [N, C, h, w]."""
        layout = GridLayout(x.shape[2], x.shape[3])
        x = layout.from_map(x)  # [N, h*w, C]
        for blk in blocks:
            x = self.run_block(blk, x, layout)
        return layout.to_map(x)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """images [N, 3, H, W] -> stage-3 tokens [N, L, C3] after the last block."""
        x = self._conv_stage(self.pos_drop(self.patch_embed1(x)), self.blocks1)  # [N, C1, H/4, W/4]
        x = self._conv_stage(self.patch_embed2(x), self.blocks2)  # [N, C2, H/8, W/8]
        x = self.patch_embed4(self.patch_embed3(x).flatten(2).transpose(1, 2))  # [N, L, C3]
        return self.run_blocks(self.blocks3, x + self.pos_embed)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """images -> [N, C3]: fc_norm(mean of all tokens), or norm(tokens)[:, 0] (official)."""
        x = self.forward_tokens(x)
        return self.fc_norm(x.mean(1)) if self.global_pool else self.norm(x)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def build_convvit(size: TrunkSize, num_classes: int, global_pool: bool, drop_path_rate: float,
                  img_size: int) -> ConvViT:
    return ConvViT(img_size, size.patch_size, size.embed_dim, size.depth, size.num_heads, size.mlp_ratio,
                   num_classes, global_pool, drop_path_rate=drop_path_rate)


# ------------------------------------------------------------------------------------------ factory
def build_classifier(encoder_name: str, num_classes: int, global_pool: bool = True, drop_path_rate: float = 0.0,
                     img_size: int | None = None, init_values: float | None = None) -> nn.Module:
    """The official fine-tuning / probing model of encoder ``encoder_name`` (``pretrain.encoders``):
    ``global_pool`` True = mean pooling + fc_norm (fine-tuning recipes), False = class token after
    ``norm`` (MAE linear probing; ConvMAE: its first token, as official). ``img_size`` defaults to
    the encoder's pretraining size. ``init_values``: layer scale (ViTs only; off in all recipes)."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    size = trunk_size(encoder_name)
    img_size = img_size or size.img_size
    if size.family == "convmae":
        if init_values is not None:
            raise ValueError("init_values (layer scale) exists only for the ViT classifiers, not ConvMAE")
        return build_convvit(size, num_classes, global_pool, drop_path_rate, img_size)
    return build_vit(size, num_classes, global_pool, drop_path_rate, img_size, init_values)


def cls_token_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The class token after the last block [N, D] (no final norm when the model pools globally):
    the features SIM's few-shot evaluation uses (main_logistic.py: ``forward_features(x)[:, 0]`` of a
    global-pool models_vit, whose forward_features stops after the blocks)."""
    if getattr(model, "num_prefix_tokens", 0) < 1:
        raise ValueError(f"{type(model).__name__} has no class token; few-shot features need a ViT classifier")
    return model.forward_tokens(images)[:, 0]
