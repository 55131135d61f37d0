"""Our backbones as detectron2 ``Backbone``s, for LazyConfigs (``L(MIMBackbone)(name=...)``) and for yacs
configs (registered in ``BACKBONE_REGISTRY``), for the layer-wise lr decay detectron2's ``get_vit_lr_decay_rate`` fits our
parameter names (``.pos_embed``, ``.patch_embed``, ``.blocks.N.``).

The plain ViT feeds detectron2's own ``SimpleFeaturePyramid`` (ViTDet); ConvMAE's four levels feed
detectron2's ``FPN``. Nothing of detectron2 is re-implemented here.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from detectron2 import model_zoo
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, SimpleFeaturePyramid
from detectron2.modeling.backbone import FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from pretrain.checkpoints import LoadReport
from transfer.backbones import build_backbone, load_backbone_checkpoint

# detectron2's own ImageNet RGB constants (0-255 scale), what MAE / ConvMAE / SIM were pretrained with
_CONSTANTS = model_zoo.get_config("common/data/constants.py").constants
IMAGENET_RGB_MEAN = list(_CONSTANTS.imagenet_rgb256_mean)
IMAGENET_RGB_STD = list(_CONSTANTS.imagenet_rgb256_std)


class MIMBackbone(Backbone):
    """A ``transfer.backbones`` model (``build_backbone(name, **kwargs)``) behind detectron2's Backbone
    interface. ``load_pretrained(path)`` maps an MAE / ConvMAE / SIM pretraining checkpoint into it.

    ``out_feature`` (detectron2 ``ViT``'s argument) or ``out_features`` (``ResNet``'s) select the
    returned maps, default all of the trunk's (ViT: ``last_feat``; ConvMAE: ``s0``-``s3``). Naming them
    in the config is what lets detectron2's model-zoo configs interpolate them:
    ``SimpleFeaturePyramid(in_feature="${.net.out_feature}")``, ``FPN(in_features="${.bottom_up.out_features}")``.
    """

    def __init__(self, name: str, out_feature: str | None = None, out_features: Sequence[str] | None = None,
                 **kwargs):
        super().__init__()
        self.net = build_backbone(name, **kwargs)
        self._out_features = _select_features(name, list(self.net.out_features), out_feature, out_features)
        self._out_feature_strides = {k: self.net.out_strides[k] for k in self._out_features}
        self._out_feature_channels = {k: self.net.out_channels[k] for k in self._out_features}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.net(x)
        return {k: features[k] for k in self._out_features}

    def load_pretrained(self, path: str) -> LoadReport:
        return load_backbone_checkpoint(self.net, path)


def _select_features(name: str, available: list[str], out_feature: str | None,
                     out_features: Sequence[str] | None) -> list[str]:
    if out_feature is not None and out_features is not None:
        raise ValueError(f"MIMBackbone({name!r}): give out_feature or out_features, not both")
    wanted = [out_feature] if out_feature is not None else list(out_features or available)
    unknown = [f for f in wanted if f not in available]
    if unknown:
        raise ValueError(f"MIMBackbone({name!r}) has no output {unknown}; it returns {available}. "
                         "Pick out_feature / out_features among those.")
    return wanted


# ---- yacs configs --------------------------------------------------------------------------------
def add_mim_backbone_config(cfg: CfgNode) -> CfgNode:
    """Adds ``cfg.MODEL.MIM`` (backbone NAME, IMG_SIZE, DROP_PATH_RATE, OUT_CHANNELS) and sets the input
    the MIM encoders were pretrained on: RGB, ImageNet mean/std (detectron2's defaults and its R50
    yamls are BGR with caffe statistics). The registered builders refuse any other normalisation."""
    cfg.MODEL.MIM = CfgNode()
    cfg.MODEL.MIM.NAME = "mae_vit_base"
    cfg.MODEL.MIM.IMG_SIZE = 1024
    cfg.MODEL.MIM.DROP_PATH_RATE = 0.1
    cfg.MODEL.MIM.OUT_CHANNELS = 256
    cfg.MODEL.PIXEL_MEAN = list(IMAGENET_RGB_MEAN)
    cfg.MODEL.PIXEL_STD = list(IMAGENET_RGB_STD)
    cfg.INPUT.FORMAT = "RGB"
    return cfg


def check_imagenet_rgb_input(cfg: CfgNode) -> None:
    """Raises unless the yacs config feeds RGB images normalised with ImageNet mean/std."""
    found = {"INPUT.FORMAT": cfg.INPUT.FORMAT, "MODEL.PIXEL_MEAN": list(cfg.MODEL.PIXEL_MEAN),
             "MODEL.PIXEL_STD": list(cfg.MODEL.PIXEL_STD)}
    ok = (found["INPUT.FORMAT"] == "RGB" and np.allclose(found["MODEL.PIXEL_MEAN"], IMAGENET_RGB_MEAN)
          and np.allclose(found["MODEL.PIXEL_STD"], IMAGENET_RGB_STD))
    if not ok:
        raise ValueError(
            f"{cfg.MODEL.BACKBONE.NAME}: the MIM encoders were pretrained on RGB images normalised with "
            f"ImageNet mean {IMAGENET_RGB_MEAN} and std {IMAGENET_RGB_STD}, but this config has {found} "
            "(detectron2's defaults and R50 yamls are BGR with caffe statistics). Call "
            "add_mim_backbone_config(cfg) after merge_from_file, or set INPUT.FORMAT='RGB' and "
            "MODEL.PIXEL_MEAN / MODEL.PIXEL_STD to those values."
        )


def _mim_trunk(cfg: CfgNode) -> MIMBackbone:
    check_imagenet_rgb_input(cfg)
    m = cfg.MODEL.MIM
    return MIMBackbone(m.NAME, img_size=m.IMG_SIZE, drop_path_rate=m.DROP_PATH_RATE)


@BACKBONE_REGISTRY.register()
def build_mim_vit_sfp_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """ViTDet: our plain ViT + detectron2's SimpleFeaturePyramid (scales 4, 2, 1, 0.5 -> p2-p6)."""
    net = _mim_trunk(cfg)
    return SimpleFeaturePyramid(
        net=net, in_feature="last_feat", out_channels=cfg.MODEL.MIM.OUT_CHANNELS,
        scale_factors=(4.0, 2.0, 1.0, 0.5), top_block=LastLevelMaxPool(), norm="LN", square_pad=cfg.MODEL.MIM.IMG_SIZE,
    )


@BACKBONE_REGISTRY.register()
def build_mim_convmae_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """ConvMAE E1-E4 (s0-s3) + detectron2's FPN (p2-p6), SyncBN as the released config."""
    net = _mim_trunk(cfg)
    return FPN(bottom_up=net, in_features=["s0", "s1", "s2", "s3"], out_channels=cfg.MODEL.MIM.OUT_CHANNELS,
               norm="SyncBN", top_block=LastLevelMaxPool())
