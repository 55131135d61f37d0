"""Whole-segmentor checkpoints (``load_from``, ``--resume``) load completely or not at all.

mmengine's ``Runner.load_checkpoint`` loads with ``strict=False``: a checkpoint whose keys do not fit
leaves those parameters at their initial values with a log warning only. ``StrictSegmentorLoadHook``
sees the file's contents first (mmengine's ``after_load_checkpoint``): it renames mmseg's own ViT
encoder keys (its released MAE UperNet checkpoints; ``transfer.seg.mmseg_vit_keys``) when the model's
backbone is our ``MIMViT``, then refuses a checkpoint with missing, unexpected or mis-shaped keys,
naming them, and logs what was loaded. The configs in configs/seg list it in ``custom_hooks``.
"""
from __future__ import annotations

import re
from typing import Mapping

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmseg.registry import HOOKS
from pretrain.checkpoints import check_fits, group_keys

from .mmseg_vit_keys import MMSEG_PREFIX, is_mmseg_vit_state, mmseg_vit_to_ours


def match_segmentor_state(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> tuple[dict, str]:
    """The checkpoint's state dict under the model's names, and a one-line report.

    Raises CheckpointMismatchError when a model key is missing, a checkpoint key is unknown, or a shape
    differs."""
    state = {re.sub(r"^module\.", "", k): v for k, v in state.items()}
    note, dropped = "", []
    backbone = getattr(model, "backbone", None)
    if type(backbone).__name__ == "MIMViT" and is_mmseg_vit_state(state):
        state, dropped = mmseg_vit_to_ours(state)
        note = f"; mmseg's ViT backbone names converted to MIMViT's, dropped: {group_keys(dropped, limit=8)}"
    check_fits(model, state, f"{source} does not fit this segmentor",
               "Pass a checkpoint of this config (same backbone, sizes and classes); a pretraining checkpoint of "
               "the backbone goes to --weights as well and is loaded into the backbone only.", groups=8)
    return state, f"loaded all {len(state)} tensors of the segmentor from {source}{note}"


@HOOKS.register_module()
class StrictSegmentorLoadHook(Hook):
    """See the module doc; rewrites ``checkpoint['state_dict']`` in place before mmengine loads it."""

    priority = "VERY_HIGH"

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = checkpoint["state_dict"] if "state_dict" in checkpoint else checkpoint
        source = getattr(runner, "_load_from", None) or "the checkpoint"
        new, report = match_segmentor_state(model, state, str(source))
        state.clear()
        state.update(new)
        print_log(report, logger="current")


__all__ = ["MMSEG_PREFIX", "StrictSegmentorLoadHook", "match_segmentor_state"]
