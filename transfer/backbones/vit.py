"""Plain ViT backbone of ViTDet (Li et al., ECCV 2022) for MAE / SIM encoders.

Forward semantics of detectron2 ``modeling/backbone/vit.py`` ``ViT`` with the ViTDet settings
(projects/ViTDet configs/common/models/mask_rcnn_vitdet.py): patch embedding, absolute position
embedding of the 224-pretraining (with the class-token slot, [1, 1 + 14*14, D]) resized bicubically
to the input grid in every forward, window attention in all blocks except the global ones, decomposed
relative positions in every block (zero-initialised: pretraining has none), no class token, no final
norm. The segmentation recipe (mmseg ``MAE``, configs/seg) instead keeps the class token in the
attention sequence of all-global blocks (``use_cls_token``) with BEiT's per-block bias tables.
Attention runs through ``F.scaled_dot_product_attention`` (see ``vit_block``).

Output: one stride-16 map, ``{"last_feat": [N, D, H/16, W/16]}`` (detectron2's name, so detectron2's
``SimpleFeaturePyramid(in_feature="last_feat")`` builds the 4/8/16/32(/64) pyramid from it), or with
``out_indices`` the outputs of those blocks, ``{"block3": ..., "block5": ...}`` (zero-based, what
mmseg's MAE recipe feeds to ``Feature2Pyramid``). The multi-scale pyramid of a plain ViT is the
neck's job and lives in the framework (detectron2 ``SimpleFeaturePyramid``, mmseg
``Feature2Pyramid``); this module does not duplicate it.

Parameter names are MAE's encoder names, so an MAE/SIM encoder state dict loads directly
(``transfer.backbones.load_backbone_checkpoint`` drops cls_token, norm, decoder keys).
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn as nn
from timm.layers import PatchEmbed

from pretrain.models.vit_common import run_block

from .pos_resize import abs_pos_for_grid
from .vit_block import WindowBlock, init_transformer_weights


def _check_block_options(depth: int, global_blocks: Sequence[int], out_indices: Sequence[int] | None,
                         use_cls_token: bool, use_rel_pos: bool, has_cls_position: bool) -> None:
    bad = [i for i in list(global_blocks) + list(out_indices or []) if not 0 <= i < depth]
    if bad:
        raise ValueError(f"block indices {bad} out of range for depth {depth} (zero-based)")
    if use_cls_token and (sorted(set(global_blocks)) != list(range(depth)) or use_rel_pos or not has_cls_position):
        raise ValueError(
            "use_cls_token keeps the class token in attention (mmseg's MAE backbone): it needs "
            f"global_blocks=tuple(range({depth})), use_rel_pos=False, use_abs_pos=True and "
            f"pretrain_use_cls_token=True; got global_blocks={tuple(global_blocks)}, use_rel_pos={use_rel_pos}, "
            f"a class-token position slot: {has_cls_position}"
        )


class ViTBackbone(nn.Module):
    """ViTDet plain backbone.

    Args:
        img_size: training input size; sizes the global blocks' ``rel_pos_*`` tables (2*64-1 at 1024).
        global_blocks: zero-based indices of the global-attention blocks; all others use windows
            (detectron2's ``window_block_indexes`` is the complement).
        window_size: window of the windowed blocks (tokens); grids that are not a multiple are
            zero-padded per block, as in detectron2.
        pretrain_img_size, pretrain_use_cls_token: shape of the stored ``pos_embed``
            [1, (1 +) (pretrain_img_size / patch_size)^2, D], as the pretraining checkpoint.
        out_indices: None -> ``{"last_feat": last block output}``; else ``{"block{i}": ...}``.
        use_rel_pos_bias, init_values: the segmentation recipe's per-block BEiT relative position
            bias table and layer scale (mmseg ``MAE``; see ``WindowBlock``); off in ViTDet.
        use_cls_token: prepend the (pretrained) class token, plus its position slot, to the patch
            tokens of every block and drop it from the outputs, as mmseg's ``MAE`` backbone
            (``with_cls_token=True``); the bias tables get BEiT's 3 class-token entries. Needs
            global attention in every block and a ``pos_embed`` with the class-token slot.
        use_act_checkpoint: activation checkpointing of every block while training.
    """

    arch = "vit"

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        use_abs_pos: bool = True,
        use_rel_pos: bool = True,
        rel_pos_zero_init: bool = True,
        window_size: int = 0,
        global_blocks: Sequence[int] = (),
        pretrain_img_size: int = 224,
        pretrain_use_cls_token: bool = True,
        out_indices: Sequence[int] | None = None,
        use_act_checkpoint: bool = False,
        use_rel_pos_bias: bool = False,
        init_values: float | None = None,
        use_cls_token: bool = False,
    ):
        super().__init__()
        _check_block_options(depth, global_blocks, out_indices, use_cls_token, use_rel_pos,
                             use_abs_pos and pretrain_use_cls_token)
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_prefix_tokens = 1 if pretrain_use_cls_token else 0
        self.global_blocks = tuple(sorted(global_blocks))
        self.use_act_checkpoint = use_act_checkpoint
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if use_cls_token else None

        self.patch_embed = PatchEmbed(
            img_size=None, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
            flatten=False, output_fmt="NHWC", strict_img_size=False,
        )  # x [N, 3, H, W] -> [N, H/p, W/p, D]
        if use_abs_pos:
            self.pretrain_grid = (pretrain_img_size // patch_size,) * 2
            num_positions = self.pretrain_grid[0] * self.pretrain_grid[1] + self.num_prefix_tokens
            self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
        else:
            self.pos_embed = None

        grid = (img_size // patch_size, img_size // patch_size)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth, device="cpu")]  # stochastic depth rule
        blocks = []
        for i in range(depth):
            window = 0 if i in self.global_blocks else window_size
            rel_size = None if not use_rel_pos else (grid if window == 0 else (window, window))
            blocks.append(
                WindowBlock(
                    embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path=dpr[i],
                    norm_layer=partial(nn.LayerNorm, eps=norm_eps), window_size=window,
                    rel_pos_size=rel_size, rel_pos_zero_init=rel_pos_zero_init,
                    rel_pos_bias_grid=(grid if window == 0 else (window, window)) if use_rel_pos_bias else None,
                    init_values=init_values, num_prefix_tokens=int(use_cls_token),
                )
            )
        self.blocks = nn.ModuleList(blocks)

        # output contract (detectron2 style)
        self.out_indices = None if out_indices is None else tuple(out_indices)
        names = ["last_feat"] if out_indices is None else [f"block{i}" for i in self.out_indices]
        self.out_features = names
        self.out_strides = {n: patch_size for n in names}
        self.out_channels = {n: embed_dim for n in names}

        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(init_transformer_weights)

    @property
    def window_sizes(self) -> list[int]:
        """Window of every block (0 = global attention)."""
        return [blk.window_size for blk in self.blocks]

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"} if self.cls_token is not None else {"pos_embed"}

    def _prepend_cls_token(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, h, w, D] (position added) -> [N, 1 + h*w, D], class token + its position slot first."""
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)  # [N, 1, D]
        return torch.cat([cls, x.flatten(1, 2)], dim=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [N, 3, H, W] -> {name: [N, D, H/p, W/p]} (floor division, like the strided conv)."""
        x = self.patch_embed(x)  # [N, h, w, D]
        n, h, w, d = x.shape
        if self.pos_embed is not None:
            x = x + abs_pos_for_grid(self.pos_embed, (h, w), self.num_prefix_tokens)
        extra: tuple = ()
        if self.cls_token is not None:
            x, extra = self._prepend_cls_token(x), (None, (h, w))  # blocks take (x, attn_bias, hw)

        def grid(t: torch.Tensor) -> torch.Tensor:  # block output -> [N, D, h, w] (class token dropped)
            return (t if t.dim() == 4 else t[:, 1:].reshape(n, h, w, d)).permute(0, 3, 1, 2)

        outs: dict[str, torch.Tensor] = {}
        for i, blk in enumerate(self.blocks):
            x = run_block(blk, x, *extra, checkpointing=self.use_act_checkpoint)
            if self.out_indices is not None and i in self.out_indices:
                outs[f"block{i}"] = grid(x)
        if self.out_indices is None:
            outs["last_feat"] = grid(x)
        return outs
