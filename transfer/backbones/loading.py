"""Pretraining checkpoints (official MAE / SIM / ConvMAE files, our exports, timm / Hugging Face files)
into a backbone: ``pretrain.checkpoints.map_state_dict`` (names, arch check, report) with the backbones'
position-table rules: ``pos_embed`` onto the backbone's grid (class-token slot added / dropped as it
needs), ``rel_pos_h/w`` and ``relative_position_bias_table`` to its window / grid sizes.

``load_backbone_checkpoint(backbone, path_or_state_dict)`` reads, maps, loads and logs the ``LoadReport``
(the detectron2 and mmseg adapters load pretraining files through it, each with its own logger).
"""
from __future__ import annotations

import logging
import os
from functools import partial
from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn

from pretrain.checkpoints import LoadReport, map_state_dict, state_and_source

from .pos_resize import infer_grid, resize_pos_embed
from .rel_pos import resize_rel_pos, resize_rel_pos_bias_table

logger = logging.getLogger(__name__)

__all__ = ["convert_state_dict", "load_backbone_checkpoint", "resize_position_table"]


def _convert_pos_embed(backbone: nn.Module, ckpt: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """Checkpoint pos_embed [1, P + g*g, D] -> the backbone's shape (prefix slots and grid)."""
    own_prefix = getattr(backbone, "num_prefix_tokens", 0)
    own_grid = getattr(backbone, "pretrain_grid", None) or getattr(backbone, "grid", None)
    if own_grid is None:
        own_grid, own_prefix = infer_grid(own.shape[1], own_prefix)
    old_grid, old_prefix = infer_grid(ckpt.shape[1])
    return resize_pos_embed(ckpt, tuple(own_grid), old_grid, old_prefix, own_prefix)


def resize_position_table(backbone: nn.Module, key: str, value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``value`` resized to ``target``'s shape where the key is a position table (position embedding,
    relative position tables); unchanged otherwise (the caller reports the mismatch)."""
    if key == "pos_embed":
        return _convert_pos_embed(backbone, value, target)
    if key.endswith(("rel_pos_h", "rel_pos_w")) and value.shape[1:] == target.shape[1:]:
        return resize_rel_pos(value, target.shape[0])
    if key.endswith("relative_position_bias_table") and value.shape[1:] == target.shape[1:]:
        old_grid, _ = infer_grid(value.shape[0])  # (2g-1)^2 rows for a square g x g grid
        new_grid, _ = infer_grid(target.shape[0])
        return resize_rel_pos_bias_table(value, ((old_grid[0] + 1) // 2,) * 2, ((new_grid[0] + 1) // 2,) * 2)
    return value


def convert_state_dict(
    backbone: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint", strict: bool = True,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Map a pretraining state dict onto ``backbone.state_dict()`` names and shapes, position tables
    resized. Returns (state dict holding only backbone keys, report); raises CheckpointMismatchError for
    another architecture or size, PartialLoadError (``strict``) for missing encoder keys."""
    return map_state_dict(backbone, state_dict, source, strict, partial(resize_position_table, backbone))


def load_backbone_checkpoint(
    backbone: nn.Module, checkpoint: str | os.PathLike | Mapping[str, torch.Tensor], strict: bool = True,
    name: str | None = None, dropped: Sequence[str] = (), log: Callable[[str], None] = logger.info,
    title: str = "",
) -> LoadReport:
    """Load a pretraining checkpoint (path or state dict; ``name`` for messages) into ``backbone``:
    ``convert_state_dict``, then a load that leaves the keys the file lacks at init. ``dropped``: keys the
    caller removed before (its own renaming), added to the report. Returns the report, also passed to
    ``log`` after ``title``."""
    state, source = state_and_source(checkpoint, name)
    sd, report = convert_state_dict(backbone, state, source, strict)
    backbone.load_state_dict(sd, strict=False)
    report.dropped += dropped
    log(f"{title}{report}")
    return report
