"""The pieces a fine-tuning or linear-probing run is built from, per protocol, as the official
main_finetune.py / main_linprobe.py build them: the model (pretrained trunk, new head; or a whole
fine-tuned file loaded strictly for evaluation), the optimizer and the loss."""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

from pretrain.checkpoints import read_checkpoint, state_dict_of, strip_prefixes
from pretrain.weights import resolve_weights
from transfer.cls.weights import load_classifier_weights, load_finetuned
from transfer.cls.config import ClsConfig
from transfer.cls.lars import LARS
from transfer.cls.layer_decay import param_groups_lrd
from transfer.cls.linear_probe import to_linear_probe
from transfer.cls.models import build_classifier


def build_protocol_model(cfg: ClsConfig, num_classes: int, eval_only: bool) -> nn.Module:
    """The classifier of ``cfg.protocol``: finetune: trunk with drop path + pooled head; linprobe: the
    frozen trunk + BatchNorm/linear head (``to_linear_probe``). The trunk starts from ``cfg.weights``
    (a pretraining file, with the load report) or random init; with ``eval_only``, ``cfg.weights`` is a
    trained classifier of this protocol (an official fine-tuned file, or ours) loaded strictly."""
    drop_path = cfg.drop_path if cfg.protocol == "finetune" else 0.0
    model = build_classifier(cfg.model, num_classes, cfg.global_pool, drop_path, cfg.input_size)
    if cfg.weights and not eval_only:  # the head re-drawn as main_finetune.py (linprobe: to_linear_probe)
        print(load_classifier_weights(model, resolve_weights(cfg.weights), allow_partial=cfg.allow_partial_weights),
              flush=True)
    if cfg.protocol == "linprobe":
        to_linear_probe(model)
    if cfg.weights and eval_only:
        load_trained(model, cfg.weights)
    return model


def load_trained(model: nn.Module, weights: str) -> None:
    """A whole trained classifier (``['model']`` of an official fine-tuned file or of our checkpoint)
    into ``model``, strictly: every name and shape must match."""
    path = resolve_weights(weights)
    state, _ = strip_prefixes(state_dict_of(read_checkpoint(path), path))
    print(load_finetuned(model, state, path), flush=True)


def build_optimizer(cfg: ClsConfig, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """finetune: AdamW over the layer-decay groups (``param_groups_lrd``: each group's ``lr_scale``
    multiplies the scheduled lr); linprobe: LARS over the head (weight decay ``cfg.weight_decay``)."""
    if cfg.protocol == "linprobe":
        return LARS(model.head.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    no_wd = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    groups = param_groups_lrd(model, cfg.weight_decay, no_wd, cfg.layer_decay)
    return torch.optim.AdamW(groups, lr=lr, fused=next(model.parameters()).is_cuda)


def build_criterion(cfg: ClsConfig) -> nn.Module:
    """main_finetune.py: soft-target cross-entropy under mixup (the targets carry the smoothing), else
    label smoothing, else cross-entropy; main_linprobe.py: cross-entropy."""
    if cfg.uses_mixup:
        return SoftTargetCrossEntropy()
    if cfg.protocol == "finetune" and cfg.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
    return nn.CrossEntropyLoss()
