"""Parameter groups with layer-wise lr decay for fine-tuning (facebookresearch/mae util/lr_decay.py
``param_groups_lrd``; Alpha-VL/ConvMAE util/lr_decay.py is the same with ``blocks3`` as the blocks
and ``blocks1``/``blocks2`` in layer 0).

With B transformer blocks and ``num_layers = B + 1``: layer ids from
``transfer.backbones.layer_id.trunk_layer_id`` (0: embeddings, i + 1: block i, B + 1: fc_norm/head),
``lr_scale = layer_decay ** (num_layers - layer id)``; weight decay 0 for 1-d parameters and the
model's ``no_weight_decay()`` names, ``weight_decay`` otherwise; frozen parameters are left out.
"""
from __future__ import annotations

from typing import Iterable

import torch.nn as nn

from transfer.backbones.layer_id import trunk_layer_id


def num_blocks(model: nn.Module) -> int:
    """Transformer blocks of a classifier: ``blocks`` (ViT) or ``blocks3`` (ConvMAE)."""
    for attr in ("blocks", "blocks3"):
        if hasattr(model, attr):
            return len(getattr(model, attr))
    raise ValueError(f"{type(model).__name__} has neither 'blocks' nor 'blocks3'; layer decay needs a ViT or ConvMAE trunk")


def param_groups_lrd(model: nn.Module, weight_decay: float = 0.05, no_weight_decay_list: Iterable[str] = (),
                     layer_decay: float = 0.75) -> list[dict]:
    """One group per (layer id, decay / no decay), in order of first appearance, each
    ``{'lr_scale', 'weight_decay', 'params'}`` (the official semantics; see the module doc)."""
    blocks = num_blocks(model)
    num_layers = blocks + 1
    skip = set(no_weight_decay_list)
    groups: dict[str, dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim == 1 or name in skip
        layer_id = trunk_layer_id(name, blocks)
        key = f"layer_{layer_id}_{'no_decay' if no_decay else 'decay'}"
        if key not in groups:
            groups[key] = {"lr_scale": layer_decay ** (num_layers - layer_id),
                           "weight_decay": 0.0 if no_decay else weight_decay, "params": []}
        groups[key]["params"].append(param)
    return list(groups.values())
