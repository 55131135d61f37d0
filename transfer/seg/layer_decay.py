"""Layer-wise learning-rate decay for our ViT and ConvMAE backbones, as an mmengine optimizer-wrapper
constructor (``MIMLayerDecayOptimizerConstructor``).

Why not mmseg's own ``LayerDecayOptimizerConstructor``: it only accepts backbones whose class name
contains 'BEiT' / 'MAE' / 'ConvNeXt' and reads the block index from ``backbone.layers.N``; ours are
``backbone.net.blocks.N`` (ViT) and ``backbone.net.blocks1/2/3.N`` (ConvMAE).

The rule is the one of mmseg's ``get_layer_id_for_vit`` (MAE / SIM recipe) and of
Alpha-VL/ConvMAE SEG/mmcv_custom/layer_decay_optimizer_constructor.py (ConvMAE recipe), with
L = ``paramwise_cfg['num_layers']`` transformer blocks:

    layer id 0       pos_embed, cls/mask token, patch_embed* (ConvMAE: also blocks1, blocks2)
    layer id i + 1   blocks.i (ViT) / blocks3.i (ConvMAE)
    layer id L + 1   everything else: neck, heads (and backbone parts outside the blocks)
    lr scale         layer_decay_rate ** (L + 1 - layer id)

Weight decay 0 for 1-D parameters and biases, ``weight_decay`` otherwise (the same rule in both
official constructors).
"""
from __future__ import annotations

import json

import torch.nn as nn
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

from transfer.backbones.layer_id import trunk_layer_id


def get_layer_id(name: str, num_layers: int) -> int:
    """Layer id of parameter ``name`` of a segmentor (see the module doc)."""
    if not name.startswith("backbone."):
        return num_layers + 1
    name = name[len("backbone."):]
    if name.startswith("net."):  # our mmseg wrappers hold the transfer.backbones module as .net
        name = name[len("net."):]
    return trunk_layer_id(name, num_layers)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MIMLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """``paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.65)``; one parameter group per
    (layer id, decay / no decay), each with its ``lr`` and ``lr_scale``."""

    def add_params(self, params: list[dict], module: nn.Module, **kwargs) -> None:
        num_layers = self.paramwise_cfg.get("num_layers")
        rate = self.paramwise_cfg.get("layer_decay_rate")
        if num_layers is None or rate is None:
            raise KeyError(
                "MIMLayerDecayOptimizerConstructor needs paramwise_cfg=dict(num_layers=..., layer_decay_rate=...); "
                f"got {dict(self.paramwise_cfg)}"
            )
        groups: dict[str, dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue  # frozen (e.g. a fixed position table)
            no_decay = param.ndim == 1 or name.endswith(".bias")
            layer_id = get_layer_id(name, num_layers)
            key = f"layer_{layer_id}_{'no_decay' if no_decay else 'decay'}"
            if key not in groups:
                scale = rate ** (num_layers + 1 - layer_id)
                groups[key] = dict(params=[], param_names=[], lr_scale=scale, group_name=key,
                                   lr=scale * self.base_lr, weight_decay=0.0 if no_decay else self.base_wd)
            groups[key]["params"].append(param)
            groups[key]["param_names"].append(name)
        if get_dist_info()[0] == 0:
            summary = {k: dict(lr_scale=g["lr_scale"], weight_decay=g["weight_decay"], params=len(g["params"]))
                       for k, g in sorted(groups.items())}
            print_log(f"layer-wise lr decay {rate} over {num_layers} layers: {json.dumps(summary)}", logger="current")
        params.extend(groups.values())
