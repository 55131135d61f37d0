"""Layer ids for layer-wise learning-rate decay of a ViT or ConvMAE trunk, by parameter name (pure).

One rule for every recipe that decays the lr by depth (BEiT's ``get_layer_id_for_vit``, as in
facebookresearch/mae util/lr_decay.py, Alpha-VL/ConvMAE util/lr_decay.py and SEG/mmcv_custom,
and mmseg's MAE recipe), for a trunk of ``num_blocks`` transformer blocks:

    0                 cls_token, pos_embed, mask_token, patch_embed* (ConvMAE: also blocks1, blocks2)
    i + 1             blocks.i (ViT) / blocks3.i (ConvMAE)
    num_blocks + 1    everything else (fc_norm, norm, head, a detection / segmentation neck)
"""
from __future__ import annotations

import re

_EMBEDDING = re.compile(r"^(pos_embed|cls_token|mask_token)$|^(patch_embed\d*|blocks1|blocks2)\.")
_BLOCK = re.compile(r"^(?:blocks|blocks3)\.(\d+)\.")


def trunk_layer_id(name: str, num_blocks: int) -> int:
    """Layer id of trunk parameter ``name`` (names as the official models spell them, no prefix)."""
    if _EMBEDDING.search(name):
        return 0
    match = _BLOCK.match(name)
    if match:
        block = int(match.group(1))
        if block >= num_blocks:
            raise ValueError(
                f"parameter {name} is in block {block} but num_layers (the trunk's block count) is {num_blocks}; "
                "set it to the number of transformer blocks (12 for ViT-B, 11 for ConvMAE-B)"
            )
        return block + 1
    return num_blocks + 1
