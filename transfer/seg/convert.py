"""mmseg half of checkpoint conversion: build an mmengine config's backbone (``MIMViT`` / ``MIMConvMAE``),
which says where the trunk lives (``backbone.net.``) and with which sizes (crop size -> position tables,
per-block rel-pos bias, layer scale); ``transfer.convert`` maps and saves."""
from __future__ import annotations

import copy
import os

import torch.nn as nn
from mmengine.config import Config

import transfer.seg  # noqa: F401  (registers MIMViT / MIMConvMAE)
from mmseg.registry import MODELS
from transfer.convert import ConversionResult, convert_into_backbone


def mmseg_backbone(config_file: str, cfg_options: dict | None = None) -> nn.Module:
    """The backbone of an mmengine config file (+ overrides), freshly initialised (no checkpoint read)."""
    cfg = Config.fromfile(config_file)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    backbone_cfg = copy.deepcopy(cfg.model.backbone)
    backbone_cfg.pop("pretrained", None)
    backbone_cfg.pop("init_cfg", None)
    return MODELS.build(backbone_cfg)


def convert_for_mmseg(
    checkpoint: str | os.PathLike, output: str | os.PathLike, config_file: str, cfg_options: dict | None = None,
    strict: bool = True,
) -> ConversionResult:
    """Pretraining checkpoint -> mmengine checkpoint of the backbone trunk for ``config_file``."""
    return convert_into_backbone(checkpoint, output, mmseg_backbone(config_file, cfg_options), "mmseg", strict)
