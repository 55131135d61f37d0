"""LARS for linear probing (facebookresearch/mae util/lars.py, from MoCo v3).

Per parameter with more than one dimension: ``g <- g + wd * p``, then ``g <- g * trust`` with
``trust = trust_coefficient * ||p|| / ||g||`` (1 when either norm is 0); 1-d parameters (biases,
norms) get neither. Then heavy-ball momentum ``mu <- momentum * mu + g`` and ``p <- p - lr * mu``.

Why not ``timm.optim.Lars``: its trust ratio is ``coeff * ||p|| / (||g|| + wd * ||p|| + eps)`` (not
``||g + wd * p||``), it adapts only when weight decay is non-zero unless ``always_adapt`` (the
linear-probe recipe has wd 0, so it would not adapt at all), and it adapts 1-d parameters too; one
step differs from the official one (tests/test_cls_optim.py shows it).
"""
from __future__ import annotations

from typing import Iterable

import torch


class LARS(torch.optim.Optimizer):
    """The official LARS (see the module doc); ``lr`` may be changed per step through param_groups."""

    def __init__(self, params: Iterable, lr: float = 0.0, weight_decay: float = 0.0, momentum: float = 0.9,
                 trust_coefficient: float = 0.001):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, trust_coefficient=trust_coefficient)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if p.ndim > 1:  # not a bias or a norm's scale / shift
                    update = update.add(p, alpha=group["weight_decay"])
                    p_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
                    trust = torch.where((p_norm > 0) & (u_norm > 0),
                                        group["trust_coefficient"] * p_norm / u_norm, torch.ones_like(p_norm))
                    update = update.mul(trust)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"].mul_(group["momentum"]).add_(update)
                p.add_(mu, alpha=-group["lr"])
        return loss
