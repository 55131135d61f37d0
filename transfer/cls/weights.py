"""Weights for a classifier (``transfer.cls.models.build_classifier``).

``load_classifier_weights(model, checkpoint)`` reads the file through ``pretrain.checkpoints`` (no
code from it runs) and:
- a fine-tuned file (every parameter and buffer of the model, same names and shapes, e.g. the
  released ``mae_finetuned_vit_base.pth``) is loaded strictly: an extra key is an error;
- a pretraining file (official MAE / ConvMAE / SIM checkpoint, our ``encoder.pth``) is loaded as the
  official main_finetune.py / main_linprobe.py do: a head of another shape is removed,
  ``pos_embed`` is interpolated to the model's grid (bicubic, as the official
  ``interpolate_pos_embed``; ``transfer.backbones.convert_state_dict``), keys the classifier has no use for
  (decoder, final ``norm`` under global pooling, SIM's target branch) are dropped and reported,
  and the head's weight is re-drawn from trunc-normal(``head_init_std``; 2e-5 for fine-tuning as
  official). Only ``head.*`` and ``fc_norm.*`` may stay at init; anything else is an error
  (``PartialLoadError``) unless ``allow_partial``.
Returns the ``LoadReport`` (also logged).
"""
from __future__ import annotations

import logging
import os
import re
from typing import Mapping

import torch
import torch.nn as nn
from timm.layers import trunc_normal_

from pretrain.checkpoints import (
    LoadReport, check_fits, key_mismatch, require_loaded, state_and_source, strip_prefixes,
)
from transfer.backbones import load_backbone_checkpoint

logger = logging.getLogger(__name__)

FINETUNE_HEAD_STD = 2e-5  # official main_finetune.py: trunc_normal_(model.head.weight, std=2e-5)
NEW_KEYS = re.compile(r"^(head|fc_norm)\.")  # what a pretraining file cannot hold


def is_complete(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` holds every key of ``model`` with its shape (a fine-tuned file)."""
    found = key_mismatch(model.state_dict(), state_dict)
    return not found.missing and not found.shapes


def load_finetuned(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> LoadReport:
    """Strict load of a whole trained classifier; any missing, unexpected or reshaped key raises
    CheckpointMismatchError naming them."""
    check_fits(model, state_dict, f"{source} is not a trained {type(model).__name__} of this shape",
               "Is it a model with another number of classes, pooling (global_pool) or protocol?")
    model.load_state_dict(state_dict, strict=True)
    return LoadReport(source, loaded=sorted(state_dict))


def load_pretrained_trunk(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str,
                          head_init_std: float = FINETUNE_HEAD_STD, allow_partial: bool = False) -> LoadReport:
    """Load a pretraining state dict into the trunk and re-draw the head (see the module doc)."""
    own = model.state_dict()
    sd = {k: v for k, v in state_dict.items()
          if not (NEW_KEYS.match(k) and k in own and tuple(v.shape) != tuple(own[k].shape))}
    report = load_backbone_checkpoint(model, sd, strict=False, name=source, dropped=sorted(set(state_dict) - set(sd)),
                                      log=logger.info)
    require_loaded([k for k in report.missing if not NEW_KEYS.match(k)], source, allow_partial,
                   " A classifier takes every trunk parameter from the file; only head.* and fc_norm.* are new.")
    if "head.weight" in report.missing and isinstance(model.head, nn.Linear):
        trunc_normal_(model.head.weight, std=head_init_std)
    return report


def load_classifier_weights(model: nn.Module, checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
                            head_init_std: float = FINETUNE_HEAD_STD, allow_partial: bool = False) -> LoadReport:
    """Load a fine-tuned (strict) or a pretraining file (trunk + new head) into ``model``."""
    state, source = state_and_source(checkpoint)
    state_dict, _ = strip_prefixes(state)
    if not is_complete(model, state_dict):
        return load_pretrained_trunk(model, state_dict, source, head_init_std, allow_partial)  # logs its report
    report = load_finetuned(model, state_dict, source)
    logger.info("%s", report)
    return report
