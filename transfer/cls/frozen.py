"""Classification on frozen features: weighted kNN (DINO eval_knn.py: k 20, T 0.07) and few-shot
logistic regression on a labelled subset (OpenGVLab/Siamese-Image-Modeling main_logistic.py).

The trunk is the classifier of ``transfer.cls.models`` loaded from ``cfg.weights`` (a pretraining file)
or left at random init; nothing is trained but the logistic regression. kNN embeds with
``forward_features`` (the class token after ``norm`` with ``global_pool=False``, else the pooled
tokens after ``fc_norm``); few-shot with the class token after the last block, as main_logistic.py.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from pretrain.knn import extract_features, knn_scores, topk_accuracy
from pretrain.labelled_data import LabelledImages
from pretrain.weights import resolve_weights
from transfer.cls.config import ClsConfig
from transfer.cls.data import eval_loader
from transfer.cls.weights import load_classifier_weights
from transfer.cls.fewshot import fit_logistic
from transfer.cls.models import build_classifier, cls_token_features


def frozen_trunk(cfg: ClsConfig, num_classes: int, device: torch.device) -> nn.Module:
    """The classifier's trunk in eval mode, from ``cfg.weights`` (load report printed) or random init."""
    torch.manual_seed(cfg.seed)
    model = build_classifier(cfg.model, num_classes, cfg.global_pool, 0.0, cfg.input_size)
    if cfg.weights:
        print(load_classifier_weights(model, resolve_weights(cfg.weights), allow_partial=cfg.allow_partial_weights),
              flush=True)
    return model.to(device).eval()


@torch.no_grad()
def evaluate_frozen(cfg: ClsConfig, train_set: LabelledImages, val_set: LabelledImages, device: torch.device) -> dict:
    """{'acc1', 'acc5'} (%) of the ``knn`` or ``fewshot`` protocol on ``val_set``."""
    model = frozen_trunk(cfg, train_set.num_classes, device)
    if cfg.protocol == "knn":
        features = model.forward_features
    else:
        def features(images: torch.Tensor) -> torch.Tensor:
            return cls_token_features(model, images)
    train_feats, train_labels = extract_features(features, eval_loader(train_set, cfg), device)
    val_feats, val_labels = extract_features(features, eval_loader(val_set, cfg), device)
    if cfg.protocol == "knn":
        scores = knn_scores(train_feats, train_labels, val_feats, train_set.num_classes, cfg.knn_k,
                            cfg.knn_temperature)
    else:
        classifier = fit_logistic(train_feats, train_labels, train_set.num_classes, cfg.lambd)
        scores = classifier.scores(val_feats)
    acc1, acc5 = topk_accuracy(scores, val_labels, (1, 5))
    return {"acc1": acc1, "acc5": acc5}
