"""The optimiser's parameter groups and the per-iteration schedules (lr; SIM's EMA momentum).

Schedules take the epoch as a float (``epoch + step / iters_per_epoch``), as facebookresearch/mae
util/lr_sched.py does, so they change every iteration.
"""
from __future__ import annotations

import math
import re

import torch.nn as nn
from timm.optim import param_groups_weight_decay

# tokens and position embeddings (cls_token, mask_token, pos_embed, decoder_pos_embed, ...)
_TOKEN = re.compile(r"(^|\.)(cls_token|mask_token|pos_embed|[a-z_]*pos_embed)$")


def param_groups(model: nn.Module, weight_decay: float, no_wd_tokens: bool = True) -> list[dict]:
    """Trainable parameters in two groups: decayed weights, then the rest (1-d: norms and biases; with
    ``no_wd_tokens`` also tokens and position embeddings). Without ``no_wd_tokens`` this is the
    official MAE/SIM grouping (timm ``param_groups_weight_decay``), which it calls."""
    tokens = [name for name, _ in model.named_parameters() if no_wd_tokens and _TOKEN.search(name)]
    # timm decides which parameters decay (decay 1.0 marks them; it leaves out empty groups)
    split = {g["weight_decay"]: g["params"] for g in param_groups_weight_decay(model, 1.0, tokens)}
    # this order (decayed first): the optimizer state in existing checkpoints follows it
    return [{"params": split.get(1.0, []), "weight_decay": weight_decay}, {"params": split.get(0.0, []), "weight_decay": 0.0}]


def lr_at(epoch: float, base_lr: float, warmup_epochs: float, epochs: float, min_lr: float = 0.0) -> float:
    """Linear warmup then half-cycle cosine to ``min_lr`` (facebookresearch/mae util/lr_sched.py)."""
    if epoch < warmup_epochs:
        return base_lr * epoch / warmup_epochs
    progress = (epoch - warmup_epochs) / max(epochs - warmup_epochs, 1e-8)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def momentum_at(epoch: float, mm: float, epochs: float, schedule: str = "cosine") -> float:
    """SIM's EMA momentum: cosine from ``mm`` to 1 over training (engine_pretrain.py), or constant."""
    if schedule == "const":
        return mm
    return 1.0 - 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)) * (1.0 - mm)
