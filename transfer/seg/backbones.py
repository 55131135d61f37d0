"""Our multi-scale backbones registered in ``mmseg.registry.MODELS``, so mmseg configs can name them.

Thin wrappers around ``transfer.backbones`` (the network code lives there, not here):

- ``MIMViT`` (MAE / SIM encoders): the outputs of blocks ``out_indices`` (3/5/7/11 for ViT-B),
  each [N, D, H/16, W/16], as a tuple for mmseg's ``Feature2Pyramid`` neck (rescales 4/2/1/0.5:
  2 deconvs, 1 deconv, identity, 2x2 max-pool -> strides 4/8/16/32), as mmseg's MAE configs do.
- ``MIMConvMAE``: ConvMAE's E1-E4 pyramid [N, C, H/s, W/s], s = 4/8/16/32 (256/384/768/768 ch for
  ConvMAE-B); no neck. E4 is a 2x2 max-pool of E3 (the released detection config) or, as in the
  released segmentation backbone (Alpha-VL/ConvMAE SEG/backbone/convmae.py, ``self.fpn``), a
  3x3 stride-2 convolution without padding + norm + GELU (``s3_downsample='conv'``).

Both take ``name=`` (a ``transfer.backbones`` name), the keyword detectron2's ``MIMBackbone`` takes;
the old ``arch=`` is refused with a message naming ``name=``.

Weights: ``pretrained=PATH_OR_NAME`` (what mmseg's ``model.pretrained`` hands to the backbone) or
``init_cfg=dict(type='Pretrained', checkpoint=PATH_OR_NAME)`` loads a pretraining checkpoint (official
MAE / SIM / ConvMAE files or ours; an official name such as ``mae_pretrain_vit_base`` is downloaded
once by ``pretrain.weights.resolve_weights``; or a ViT backbone file in mmseg's names, such as mmseg's
MAE configs start from, renamed by ``mmseg_vit_keys.mmseg_backbone_to_ours``) through
``transfer.backbones.load_backbone_checkpoint`` in ``init_weights()``: the file is read once
(``read_backbone_state``), position tables are resized to the training size, a checkpoint of another
architecture or size is refused with ``CheckpointMismatchError``, and the key report is logged and
kept as ``self.load_report``. A checkpoint that leaves backbone blocks at init raises ``PartialLoadError``;
``init_cfg`` ``strict=False`` accepts it (``tools/train_seg.py --allow-partial-weights``).
"""
from __future__ import annotations

import os
from functools import partial
from typing import Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.logging import print_log
from mmengine.model import BaseModule

from mmseg.registry import MODELS
from pretrain.checkpoints import (
    PRETRAINING_KINDS, PRETRAINING_PURPOSE, CheckpointError, CheckpointKind, LoadReport, expect_kind, read_checkpoint,
    state_dict_of,
)
from pretrain.encoders import OFFICIAL_WEIGHTS
from pretrain.weights import names_a_download, resolve_weights
from transfer.backbones import build_backbone, load_backbone_checkpoint

from .mmseg_vit_keys import mmseg_backbone_to_ours

BACKBONE_KINDS = [*PRETRAINING_KINDS, CheckpointKind.MMSEG_VIT_BACKBONE]


def read_backbone_state(path: str) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """(state dict, source for the report, keys dropped on the way) of a backbone checkpoint file: a
    pretraining checkpoint as it is; a backbone-only file in mmseg's ViT names (mmseg's beit2mmseg output,
    what mmseg's MAE configs start from) renamed to ours by ``mmseg_vit_keys.mmseg_backbone_to_ours``.
    Any other kind of file is refused with what to do with it (CheckpointError)."""
    obj = read_checkpoint(path)
    kind = expect_kind(obj, path, BACKBONE_KINDS, PRETRAINING_PURPOSE + " or a ViT backbone in mmseg's names")
    state = state_dict_of(obj, path)
    if kind is not CheckpointKind.MMSEG_VIT_BACKBONE:
        return state, path, []
    try:
        state, dropped = mmseg_backbone_to_ours(state)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return state, f"{path} (mmseg's ViT names converted)", dropped


def refuse_arch_keyword(cls: str, overrides: dict) -> None:
    """``arch=`` was the old keyword: refuse it, naming the new one."""
    if "arch" in overrides:
        raise TypeError(f"{cls} takes name= (as detectron2's MIMBackbone), not arch=: "
                        f"write {cls}(name={overrides['arch']!r}, ...)")


class _PretrainedBackbone(BaseModule):
    """``self.net`` (a ``transfer.backbones`` module) plus checkpoint loading in ``init_weights``."""

    def __init__(self, name: str, overrides: dict, pretrained: str | None, init_cfg: dict | None):
        refuse_arch_keyword(type(self).__name__, overrides)
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError("give the checkpoint either as pretrained= or as init_cfg=, not both")
            init_cfg = dict(type="Pretrained", checkpoint=pretrained)
        checkpoint = init_cfg.get("checkpoint") if isinstance(init_cfg, dict) else None
        if checkpoint and not names_a_download(checkpoint) and not os.path.isfile(os.path.expanduser(checkpoint)):
            raise FileNotFoundError(
                f"backbone checkpoint {checkpoint!r} does not exist; pass an official MAE / ConvMAE / SIM "
                f"pretraining checkpoint (a file, or one of the names {', '.join(sorted(OFFICIAL_WEIGHTS))}) or "
                "one exported by tools/train_mim.py (or no checkpoint to train from random initialisation)"
            )
        super().__init__(init_cfg)
        self.name = name
        self.net = build_backbone(name, **overrides)
        self.load_report: LoadReport | None = None

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get("type") == "Pretrained":
            path = resolve_weights(os.path.expanduser(cfg["checkpoint"]))
            state, source, dropped = read_backbone_state(path)
            self.load_report = load_backbone_checkpoint(
                self.net, state, strict=cfg.get("strict", True), name=source, dropped=dropped,
                log=partial(print_log, logger="current"), title=f"{type(self).__name__}({self.name}): ")
            self._is_init = True
            return
        super().init_weights()  # other init_cfg types; None keeps the backbone's own initialisation


@MODELS.register_module()
class MIMViT(_PretrainedBackbone):
    """Plain ViT (MAE / SIM encoder) for UperNet: x [N, 3, H, W] -> tuple of len(out_indices)
    maps [N, D, H/16, W/16] (floor division).

    Args:
        name: a ``transfer.backbones`` ViT name (``mae_vit_base``, ``mae_vit_tiny``, ...).
        out_indices: zero-based blocks whose outputs are returned (mmseg's MAE recipe: 3, 5, 7, 11).
        pretrained / init_cfg: pretraining checkpoint, see the module doc.
        **overrides: constructor arguments of ``transfer.backbones.ViTBackbone`` (img_size,
            global_blocks, use_rel_pos_bias, init_values, use_cls_token, drop_path_rate, ...).
    """

    def __init__(self, name: str = "mae_vit_base", out_indices: Sequence[int] = (3, 5, 7, 11),
                 pretrained: str | None = None, init_cfg: dict | None = None, **overrides):
        super().__init__(name, dict(overrides, out_indices=sorted(set(out_indices))), pretrained, init_cfg)
        self.out_indices = tuple(out_indices)
        if getattr(self.net, "arch", None) != "vit":
            raise ValueError(f"MIMViT needs a ViT backbone (vit_*); {name!r} is a {self.net.arch}; use MIMConvMAE")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.net(x)  # {"block{i}": [N, D, H/16, W/16]}
        return tuple(feats[f"block{i}"] for i in self.out_indices)


@MODELS.register_module()
class MIMConvMAE(_PretrainedBackbone):
    """ConvMAE hybrid encoder for UperNet: x [N, 3, H, W] -> (E1 [N, C1, H/4, W/4], E2 [N, C2, H/8, W/8],
    E3 [N, C3, H/16, W/16], E4 [N, C3, ~H/32, ~W/32]).

    Args:
        name: a ``transfer.backbones`` ConvMAE name (``convmae_base``, ``convmae_tiny``, ...).
        s3_downsample: 'maxpool' (2x2, the detection backbone's E4) or 'conv' (the released
            segmentation backbone: Conv2d(C3, C3, 3, stride 2, no padding) + norm + GELU; 32 -> 15).
        norm_cfg: norm of the 'conv' downsampling (SyncBN in the paper config).
        **overrides: constructor arguments of ``transfer.backbones.ConvMAEBackbone``.
    """

    def __init__(self, name: str = "convmae_base", s3_downsample: str = "maxpool",
                 norm_cfg: dict | None = None, pretrained: str | None = None, init_cfg: dict | None = None,
                 **overrides):
        super().__init__(name, overrides, pretrained, init_cfg)
        if getattr(self.net, "arch", None) != "convmae":
            raise ValueError(f"MIMConvMAE needs a ConvMAE backbone (convmae_*); {name!r} is a {self.net.arch}; "
                             "use MIMViT")
        if s3_downsample not in ("maxpool", "conv"):
            raise ValueError(f"s3_downsample must be 'maxpool' or 'conv', got {s3_downsample!r}")
        self.s3_downsample = s3_downsample
        if s3_downsample == "conv":
            c3 = self.net.out_channels["s2"]
            self.s3_conv = nn.Sequential(
                nn.Conv2d(c3, c3, kernel_size=3, stride=2),
                build_norm_layer(norm_cfg or dict(type="BN", requires_grad=True), c3)[1],
                nn.GELU(),
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.net(x)  # {"s0": stride 4, "s1": 8, "s2": 16, "s3": 32 (max-pool of s2)}
        s3 = self.s3_conv(feats["s2"]) if self.s3_downsample == "conv" else feats["s3"]
        return feats["s0"], feats["s1"], feats["s2"], s3
