"""mmseg half of checkpoint conversion: build an mmengine config's backbone (``MIMViT`` / ``MIMConvMAE``)
to find where the trunk lives (``backbone.net.``) and with which sizes (crop size -> position tables,
per-block rel-pos bias, layer scale), then let ``transfer.convert`` map and save."""
from __future__ import annotations

import copy
import os

from mmengine.config import Config

import transfer.seg  # noqa: F401  (registers MIMViT / MIMConvMAE)
from mmseg.registry import MODELS
from transfer.convert import ConversionResult, convert_checkpoint, find_trunk, save_converted


def mmseg_trunk(config_file: str, cfg_options: dict | None = None):
    """(key prefix in the segmentor, trunk module) for an mmengine config file (+ overrides)."""
    cfg = Config.fromfile(config_file)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    backbone_cfg = copy.deepcopy(cfg.model.backbone)
    backbone_cfg.pop("pretrained", None)  # build the architecture only; no checkpoint is read here
    backbone_cfg.pop("init_cfg", None)
    return find_trunk(MODELS.build(backbone_cfg), "backbone.")


def convert_for_mmseg(
    checkpoint: str | os.PathLike, output: str | os.PathLike, config_file: str, cfg_options: dict | None = None,
    strict: bool = True,
) -> ConversionResult:
    """Pretraining checkpoint -> mmengine checkpoint of the backbone trunk for ``config_file``."""
    prefix, trunk = mmseg_trunk(config_file, cfg_options)
    result = convert_checkpoint(checkpoint, trunk, prefix, strict)
    save_converted(result, output, "mmseg")
    return result
