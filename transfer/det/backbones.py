"""Our backbones as detectron2 ``Backbone``s, for LazyConfigs (``L(MIMBackbone)(name=...)``) and for yacs
configs (registered in ``BACKBONE_REGISTRY``), for the layer-wise lr decay detectron2's ``get_vit_lr_decay_rate`` fits our
parameter names (``.pos_embed``, ``.patch_embed``, ``.blocks.N.``).

The plain ViT feeds detectron2's own ``SimpleFeaturePyramid`` (ViTDet); ConvMAE's four levels feed
detectron2's ``FPN``. Nothing of detectron2 is re-implemented here.
"""
from __future__ import annotations

import torch
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, SimpleFeaturePyramid
from detectron2.modeling.backbone import FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from transfer.backbones import LoadReport, build_backbone, load_backbone_checkpoint


class MIMBackbone(Backbone):
    """A ``transfer.backbones`` model (``build_backbone(name, **kwargs)``) behind detectron2's Backbone
    interface. ``load_pretrained(path)`` maps an MAE / ConvMAE / SIM pretraining checkpoint into it."""

    def __init__(self, name: str, **kwargs):
        super().__init__()
        self.net = build_backbone(name, **kwargs)
        self._out_features = list(self.net.out_features)
        self._out_feature_strides = dict(self.net.out_strides)
        self._out_feature_channels = dict(self.net.out_channels)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(x)

    def load_pretrained(self, path: str) -> LoadReport:
        return load_backbone_checkpoint(self.net, path)


# ---- yacs configs --------------------------------------------------------------------------------
def add_mim_backbone_config(cfg: CfgNode) -> CfgNode:
    """Adds ``cfg.MODEL.MIM`` (backbone NAME, IMG_SIZE, DROP_PATH_RATE, OUT_CHANNELS)."""
    cfg.MODEL.MIM = CfgNode()
    cfg.MODEL.MIM.NAME = "vit_base_patch16"
    cfg.MODEL.MIM.IMG_SIZE = 1024
    cfg.MODEL.MIM.DROP_PATH_RATE = 0.1
    cfg.MODEL.MIM.OUT_CHANNELS = 256
    return cfg


@BACKBONE_REGISTRY.register()
def build_mim_vit_sfp_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """ViTDet: our plain ViT + detectron2's SimpleFeaturePyramid (scales 4, 2, 1, 0.5 -> p2-p6)."""
    m = cfg.MODEL.MIM
    net = MIMBackbone(m.NAME, img_size=m.IMG_SIZE, drop_path_rate=m.DROP_PATH_RATE)
    return SimpleFeaturePyramid(
        net=net, in_feature="last_feat", out_channels=m.OUT_CHANNELS, scale_factors=(4.0, 2.0, 1.0, 0.5),
        top_block=LastLevelMaxPool(), norm="LN", square_pad=m.IMG_SIZE,
    )


@BACKBONE_REGISTRY.register()
def build_mim_convmae_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """ConvMAE E1-E4 (s0-s3) + detectron2's FPN (p2-p6), SyncBN as the released config."""
    m = cfg.MODEL.MIM
    net = MIMBackbone(m.NAME, img_size=m.IMG_SIZE, drop_path_rate=m.DROP_PATH_RATE)
    return FPN(bottom_up=net, in_features=["s0", "s1", "s2", "s3"], out_channels=m.OUT_CHANNELS,
               norm="SyncBN", top_block=LastLevelMaxPool())
