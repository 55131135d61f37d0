"""Multi-scale backbones built from the pretrained encoders (torch + timm only).

``build_backbone(name, **overrides)`` (``name``: an encoder of ``pretrain.encoders.ENCODERS``) returns an ``nn.Module`` whose ``forward(images [N, 3, H, W])``
returns a dict of feature maps [N, C, H/s, W/s]; every backbone declares them in ``out_features``,
``out_strides`` and ``out_channels`` (detectron2's ``_out_feature_*`` contract):

- ``convmae_*`` (``ConvMAEBackbone``): the 4-level pyramid ``s0``-``s3``, strides 4/8/16/32
  (detection adds the stride-64 level in its FPN).
- ``mae_vit_*`` / ``sim_vit_*`` (``ViTBackbone``): a plain ViT has one scale. It returns
  ``{"last_feat": stride 16}``, or with ``out_indices=(3, 5, 7, 11)`` the stride-16 outputs of
  those blocks. The 4/8/16/32 pyramid is built by the framework's neck: detectron2's
  ``SimpleFeaturePyramid`` (ViTDet) for detection, mmseg's ``Feature2Pyramid`` for segmentation,
  so that the official necks (and their checkpoints' key names) are used, not a copy.

Weights: ``load_backbone_checkpoint(backbone, path)`` / ``convert_state_dict`` (``transfer.backbones.loading``,
on ``pretrain.checkpoints``).
The table's settings are the official detection ones (ViTDet; ConvMAE's released ConvViTDet config); the
segmentation recipes override what they change (``out_indices``, ``drop_path_rate``, ``img_size``).
"""
from __future__ import annotations

from pretrain.encoders import ENCODERS, encoder

from .convmae import ConvMAEBackbone
from .loading import convert_state_dict, load_backbone_checkpoint
from .vit import ViTBackbone

__all__ = [
    "build_backbone", "list_backbones", "ViTBackbone", "ConvMAEBackbone",
    "convert_state_dict", "load_backbone_checkpoint",
]

_CLASSES = {"vit": ViTBackbone, "convmae": ConvMAEBackbone}


def list_backbones() -> list[str]:
    """The encoders (``pretrain.encoders.ENCODERS``) that have a transfer backbone."""
    return sorted(name for name, e in ENCODERS.items() if e.backbone)


def build_backbone(name: str, **overrides) -> ViTBackbone | ConvMAEBackbone:
    """The backbone of encoder ``name`` with the table's settings; ``overrides`` replace any of them."""
    spec = encoder(name, "backbone")
    if spec.backbone is None:
        raise KeyError(f"encoder {name!r} has no transfer backbone; those that do: {', '.join(list_backbones())}")
    return _CLASSES[spec.backbone](**{**spec.backbone_settings, **overrides})
