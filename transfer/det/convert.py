"""detectron2 half of checkpoint conversion: build a LazyConfig's backbone, which says where the trunk
lives (``backbone.net.net.`` for ViTDet, ``backbone.bottom_up.net.`` for ConvMAE + FPN) and with which
sizes (image size -> position tables); ``transfer.convert`` maps and saves."""
from __future__ import annotations

import os
from typing import Sequence

import torch.nn as nn
from detectron2.config import LazyConfig, instantiate

from transfer.convert import ConversionResult, convert_into_backbone


def detectron2_backbone(config_file: str, overrides: Sequence[str] = ()) -> nn.Module:
    """The backbone of a LazyConfig file (+ key=value overrides), freshly initialised."""
    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), list(overrides))
    return instantiate(cfg.model.backbone)


def convert_for_detectron2(
    checkpoint: str | os.PathLike, output: str | os.PathLike, config_file: str, overrides: Sequence[str] = (),
    strict: bool = True,
) -> ConversionResult:
    """Pretraining checkpoint -> detectron2 checkpoint of the backbone trunk for ``config_file``."""
    return convert_into_backbone(checkpoint, output, detectron2_backbone(config_file, overrides), "detectron2", strict)
