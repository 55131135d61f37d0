"""ConvMAE multi-scale backbone for detection (ConvViTDet; Gao et al., NeurIPS 2022).

Facts from Alpha-VL/ConvMAE ``DET/models/convmae.py`` (``ConvViTDet``) and
``DET/configs/convmae/convmae_base_mask_rcnn_FPN_100ep.py``:

    images [N, 3, H, W]
      patch_embed1 (conv k4 s4 + LN + GELU) -> blocks1 (conv blocks)     s0 [N, C1, H/4,  W/4 ]
      patch_embed2 (conv k2 s2 + LN + GELU) -> blocks2 (conv blocks)     s1 [N, C2, H/8,  W/8 ]
      patch_embed3 (conv k2 s2 + LN + GELU) -> patch_embed4 (Linear) + pos_embed
        -> blocks3: ViT blocks, global attention in blocks 0/3/6/10 (the paper's one-based
           1/4/7/11), 16x16 windows in the others                      s2 [N, C3, H/16, W/16]
      2x2 max-pool of s2                                                s3 [N, C3, H/32, W/32]

- relative position bias: two tables shared by all blocks of their kind,
  ``windowed_rel_pos_bias`` (window grid) and ``global_rel_pos_bias`` (the stage-3 grid at
  ``img_size``), zero-initialised (the pretraining has none);
- ``pos_embed`` [1, (img_size/16)^2, C3]: the pretraining's fixed sin-cos table resized bicubically
  when the checkpoint is loaded, and frozen (the official config's ``sincos_pos_embed=True`` only
  sets ``requires_grad=False``; the table it computes is never assigned). Inputs with another grid
  resize it again in the forward;
- no final norm, no ``stage*_output_decode`` (pretraining-only).

Differences, all options: grids that are not a multiple of the window are zero-padded per block (the
official code requires 1024x1024); ``shift_size`` > 0 shifts the windows of every second windowed
block (the paper's description, Swin-style; the released config uses no shift).
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from pretrain.models.conv_stages import ConvStages, GridLayout
from pretrain.models.pos_embed import get_2d_sincos_pos_embed
from pretrain.models.vit_common import run_block

from .pos_resize import abs_pos_for_grid
from .rel_pos import RelativePositionBias
from .vit_block import WindowBlock, init_transformer_weights


class ConvMAEBackbone(ConvStages, nn.Module):
    """ConvMAE hybrid encoder as a 4-level pyramid ``{"s0", "s1", "s2", "s3"}`` (strides 4/8/16/32).

    Args:
        img_size: training input size; sizes ``pos_embed`` and the global bias table.
        global_blocks: zero-based stage-3 blocks with global attention (released: 0, 3, 6, 10).
        window_size: window (tokens) of the other stage-3 blocks; 0 makes every block global.
        shift_size: Swin-style cyclic shift of every second windowed block (0 = released config).
        use_rel_pos_bias: the two shared relative position bias tables.
        pos_embed_trainable: official detection freezes it (False).
        per_block_rel_pos_bias, init_values: the released segmentation backbone (SEG/backbone/
            convmae.py): a relative position bias table in every stage-3 block instead of the two
            shared ones (set ``use_rel_pos_bias=False`` with it), and layer scale (see ``WindowBlock``).
    """

    arch = "convmae"

    def __init__(
        self,
        img_size: int = 1024,
        patch_sizes: Sequence[int] = (4, 2, 2),
        in_chans: int = 3,
        embed_dims: Sequence[int] = (256, 384, 768),
        depths: Sequence[int] = (2, 2, 11),
        num_heads: int = 12,
        mlp_ratios: Sequence[float] = (4, 4, 4),
        conv_kernel_size: int = 5,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        window_size: int = 0,
        global_blocks: Sequence[int] = (),
        shift_size: int = 0,
        use_rel_pos_bias: bool = True,
        pos_embed_trainable: bool = False,
        use_act_checkpoint: bool = False,
        per_block_rel_pos_bias: bool = False,
        init_values: float | None = None,
    ):
        super().__init__()
        dpr3 = self.add_conv_stages(in_chans, patch_sizes, embed_dims, depths, mlp_ratios, conv_kernel_size,
                                    drop_path_rate)  # patch_embed1-4, blocks1/2
        bad = [i for i in global_blocks if not 0 <= i < depths[2]]
        if bad:
            raise ValueError(f"global_blocks {bad} out of range for {depths[2]} stage-3 blocks (zero-based)")
        self.num_heads = num_heads
        self.window_size = window_size
        self.global_blocks = tuple(sorted(global_blocks)) if window_size else tuple(range(depths[2]))
        self.use_act_checkpoint = use_act_checkpoint
        self.grid = (img_size // self.patch_size, img_size // self.patch_size)
        c1, c2, c3 = self.embed_dims
        p1, p2, p3 = self.patch_sizes
        pe = get_2d_sincos_pos_embed(c3, self.grid).unsqueeze(0)  # [1, G*G, C3]; replaced on loading
        self.pos_embed = nn.Parameter(pe, requires_grad=pos_embed_trainable)
        self.blocks3 = nn.ModuleList(self._stage3_blocks(
            dpr3, num_heads, mlp_ratios[2], qkv_bias, window_size, shift_size, per_block_rel_pos_bias, init_values))
        if use_rel_pos_bias:
            self.windowed_rel_pos_bias = (
                RelativePositionBias((window_size, window_size), num_heads) if window_size else None
            )
            self.global_rel_pos_bias = RelativePositionBias(self.grid, num_heads)
        else:
            self.windowed_rel_pos_bias = self.global_rel_pos_bias = None

        # output contract (detectron2 style; names as the official ConvViTDet)
        self.out_features = ["s0", "s1", "s2", "s3"]
        self.out_strides = {"s0": p1, "s1": p1 * p2, "s2": self.patch_size, "s3": self.patch_size * 2}
        self.out_channels = {"s0": c1, "s1": c2, "s2": c3, "s3": c3}

        for blk in self.blocks3:
            blk.apply(init_transformer_weights)
        init_transformer_weights(self.patch_embed4)

    def _stage3_blocks(self, dpr: list[float], num_heads: int, mlp_ratio: float, qkv_bias: bool, window_size: int,
                       shift_size: int, per_block_rel_pos_bias: bool, init_values: float | None) -> list[WindowBlock]:
        """Stage-3 transformer blocks: global at ``self.global_blocks``, windowed elsewhere (every second
        windowed block shifted by ``shift_size``)."""
        c3, blocks, n_windowed = self.embed_dims[2], [], 0
        for i, d in enumerate(dpr):
            window = 0 if i in self.global_blocks else window_size
            shift = 0
            if window:
                shift = shift_size if n_windowed % 2 == 1 else 0
                n_windowed += 1
            blocks.append(
                WindowBlock(
                    c3, num_heads, mlp_ratio, qkv_bias, drop_path=d,
                    norm_layer=partial(nn.LayerNorm, eps=1e-6), window_size=window, shift_size=shift,
                    rel_pos_bias_grid=((window, window) if window else self.grid) if per_block_rel_pos_bias else None,
                    init_values=init_values,
                )
            )
        return blocks

    @property
    def window_sizes(self) -> list[int]:
        """Window of every stage-3 block (0 = global attention)."""
        return [blk.window_size for blk in self.blocks3]

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "windowed_rel_pos_bias.relative_position_bias_table",
                "global_rel_pos_bias.relative_position_bias_table"}

    def _run(self, blk: nn.Module, x: torch.Tensor, *args) -> torch.Tensor:
        return run_block(blk, x, *args, checkpointing=self.use_act_checkpoint)

    def _conv_stage(self, x: torch.Tensor, blocks: nn.ModuleList) -> torch.Tensor:
        """Conv blocks on every position of a map: x [N, C, h, w] -> [N, C, h, w]."""
        layout = GridLayout(x.shape[2], x.shape[3])
        x = layout.from_map(x)  # [N, h*w, C]
        for blk in blocks:
            x = self._run(blk, x, layout)
        return layout.to_map(x).contiguous()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [N, 3, H, W] -> {"s0": [N, C1, H/4, W/4], "s1": [N, C2, H/8, W/8],
        "s2": [N, C3, H/16, W/16], "s3": [N, C3, H/32, W/32]} (floor divisions)."""
        outs = {}
        x = outs["s0"] = self._conv_stage(self.patch_embed1(x), self.blocks1)  # [N, C1, H/4, W/4]
        x = outs["s1"] = self._conv_stage(self.patch_embed2(x), self.blocks2)  # [N, C2, H/8, W/8]
        x = self.patch_embed3(x).permute(0, 2, 3, 1)  # [N, h, w, C3]
        x = self.patch_embed4(x)
        h, w = x.shape[1], x.shape[2]
        x = x + abs_pos_for_grid(self.pos_embed, (h, w), num_prefix_tokens=0, old_grid=self.grid)

        global_bias = window_bias = None  # [heads, L, L], computed once per forward
        if self.global_rel_pos_bias is not None:
            global_bias = self.global_rel_pos_bias((h, w))
        if self.windowed_rel_pos_bias is not None:
            window_bias = self.windowed_rel_pos_bias()
        for blk in self.blocks3:
            x = self._run(blk, x, window_bias if blk.window_size else global_bias)
        s2 = x.permute(0, 3, 1, 2)  # [N, C3, h, w]
        outs["s2"] = s2
        outs["s3"] = F.max_pool2d(s2, kernel_size=2)  # [N, C3, h/2, w/2]
        return outs
