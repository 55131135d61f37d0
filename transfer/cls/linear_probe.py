"""The linear-probing model (facebookresearch/mae main_linprobe.py, also ConvMAE's and SIM's): the
classifier's head becomes ``Sequential(BatchNorm1d(D, affine=False, eps=1e-6), head)`` and everything
but the head is frozen. The head's weight is re-drawn from trunc-normal(std 0.01) (MoCo v3, as
official after loading the pretrained trunk). Which feature is probed is the classifier's choice:
the MAE recipe builds it with ``global_pool=False`` (class token after ``norm``).
"""
from __future__ import annotations

import torch.nn as nn
from timm.layers import trunc_normal_

HEAD_INIT_STD = 0.01


def to_linear_probe(model: nn.Module, init_std: float = HEAD_INIT_STD) -> nn.Module:
    """Turn ``model`` (a ``build_classifier`` model with a Linear ``head``) into the linear probe, in
    place, and return it. The trunk stays in whatever mode the caller sets; only ``head`` trains."""
    head = model.head
    if not isinstance(head, nn.Linear):
        raise TypeError(f"expected the classifier's head to be an nn.Linear, found {type(head).__name__}; "
                        "convert a freshly built classifier (build_classifier) once")
    trunc_normal_(head.weight, std=init_std)
    model.head = nn.Sequential(nn.BatchNorm1d(head.in_features, affine=False, eps=1e-6), head)
    for param in model.parameters():
        param.requires_grad = False
    for param in model.head.parameters():
        param.requires_grad = True
    return model
