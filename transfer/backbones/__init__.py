"""Multi-scale backbones built from the pretrained encoders (torch + timm only).

``build_backbone(name, **overrides)`` returns an ``nn.Module`` whose ``forward(images [N, 3, H, W])``
returns a dict of feature maps [N, C, H/s, W/s]; every backbone declares them in ``out_features``,
``out_strides`` and ``out_channels`` (detectron2's ``_out_feature_*`` contract):

- ``convmae_*`` (``ConvMAEBackbone``): the 4-level pyramid ``s0``-``s3``, strides 4/8/16/32
  (detection adds the stride-64 level in its FPN).
- ``vit_*`` (``ViTBackbone``, MAE and SIM encoders): a plain ViT has one scale. It returns
  ``{"last_feat": stride 16}``, or with ``out_indices=(3, 5, 7, 11)`` the stride-16 outputs of
  those blocks. The 4/8/16/32 pyramid is built by the framework's neck: detectron2's
  ``SimpleFeaturePyramid`` (ViTDet) for detection, mmseg's ``Feature2Pyramid`` for segmentation,
  so that the official necks (and their checkpoints' key names) are used, not a copy.

Weights: ``load_backbone_checkpoint(backbone, path)`` (``transfer.backbones.checkpoint``).
Defaults are the official detection settings (ViTDet; ConvMAE's released ConvViTDet config); the
segmentation recipes override what they change (``out_indices``, ``drop_path_rate``, ``img_size``).
"""
from __future__ import annotations

from pretrain.models.registry import Registry

from .checkpoint import CheckpointMismatchError, LoadReport, load_backbone_checkpoint
from .convmae import ConvMAEBackbone
from .vit import ViTBackbone

__all__ = [
    "build_backbone", "list_backbones", "ViTBackbone", "ConvMAEBackbone",
    "load_backbone_checkpoint", "LoadReport", "CheckpointMismatchError",
]

_BACKBONES = Registry("backbone")  # names overlap pretrain's (convmae_base), so a registry of its own
_register = _BACKBONES.register
list_backbones = _BACKBONES.names
build_backbone = _BACKBONES.build


# ---- plain ViT (MAE / SIM encoders) -------------------------------------------------------------
@_register
def vit_tiny_patch16(**kw) -> ViTBackbone:
    """CPU test size, the dims of ``mae_vit_tiny_patch16`` (96-d, 2 blocks, 3 heads, 64-px pretraining);
    for ``sim_vit_tiny_patch16`` pass embed_dim=64, num_heads=2."""
    cfg = dict(img_size=128, embed_dim=96, depth=2, num_heads=3, window_size=4, global_blocks=(1,),
               pretrain_img_size=64, drop_path_rate=0.0)
    return ViTBackbone(**{**cfg, **kw})


@_register
def vit_base_patch16(**kw) -> ViTBackbone:
    """ViT-B/16 as ViTDet (detectron2 projects/ViTDet configs/common/models/mask_rcnn_vitdet.py):
    window 14, global blocks 2/5/8/11, rel-pos, drop path 0.1, 1024 px."""
    cfg = dict(embed_dim=768, depth=12, num_heads=12, window_size=14, global_blocks=(2, 5, 8, 11),
               drop_path_rate=0.1)
    return ViTBackbone(**{**cfg, **kw})


@_register
def vit_large_patch16(**kw) -> ViTBackbone:
    """ViT-L/16 as ViTDet (projects/ViTDet configs/COCO/mask_rcnn_vitdet_l_100ep.py): global blocks
    5/11/17/23, drop path 0.4."""
    cfg = dict(embed_dim=1024, depth=24, num_heads=16, window_size=14,
               global_blocks=(5, 11, 17, 23), drop_path_rate=0.4)
    return ViTBackbone(**{**cfg, **kw})


# ---- ConvMAE ------------------------------------------------------------------------------------
@_register
def convmae_tiny(**kw) -> ConvMAEBackbone:
    """CPU test size, the dims of pretrain ``convmae_tiny`` (32/48/64, depths 1/1/2, 4 heads)."""
    cfg = dict(img_size=128, embed_dims=(32, 48, 64), depths=(1, 1, 2), num_heads=4, mlp_ratios=(2, 2, 2),
               window_size=4, global_blocks=(0,), drop_path_rate=0.0)
    return ConvMAEBackbone(**{**cfg, **kw})


@_register
def convmae_small(**kw) -> ConvMAEBackbone:
    """ConvMAE-S dims (pretrain ``convmae_small``: 128/256/384, 6 heads) with the base detection
    settings (no official ConvMAE-S detection config)."""
    cfg = dict(embed_dims=(128, 256, 384), depths=(2, 2, 11), num_heads=6)
    return ConvMAEBackbone(**{**cfg, **kw})


@_register
def convmae_base(**kw) -> ConvMAEBackbone:
    """ConvMAE-B as the released ConvViTDet (Alpha-VL/ConvMAE DET/configs/convmae/
    convmae_base_mask_rcnn_FPN_100ep.py): window 16, global blocks 0/3/6/10, shared rel-pos bias
    tables, frozen resized sin-cos pos_embed, drop path 0.1, 1024 px."""
    return ConvMAEBackbone(**kw)
