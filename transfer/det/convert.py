"""detectron2 half of checkpoint conversion: build a LazyConfig's backbone to find where the trunk
lives (``backbone.net.net.`` for ViTDet, ``backbone.bottom_up.net.`` for ConvMAE + FPN) and with which
sizes (image size -> position tables), then let ``transfer.convert`` map and save."""
from __future__ import annotations

import os
from typing import Sequence

from detectron2.config import LazyConfig, instantiate

from transfer.convert import ConversionResult, convert_checkpoint, find_trunk, save_converted


def detectron2_trunk(config_file: str, overrides: Sequence[str] = ()):
    """(key prefix in the detector, trunk module) for a LazyConfig file (+ key=value overrides)."""
    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), list(overrides))
    return find_trunk(instantiate(cfg.model.backbone), "backbone.")


def convert_for_detectron2(
    checkpoint: str | os.PathLike, output: str | os.PathLike, config_file: str, overrides: Sequence[str] = (),
    strict: bool = True,
) -> ConversionResult:
    """Pretraining checkpoint -> detectron2 checkpoint of the backbone trunk for ``config_file``."""
    prefix, trunk = detectron2_trunk(config_file, overrides)
    result = convert_checkpoint(checkpoint, trunk, prefix, strict)
    save_converted(result, output, "detectron2")
    return result
