"""Few-shot evaluation on frozen features: multinomial logistic regression (SIM's 1% ImageNet row).

What OpenGVLab/Siamese-Image-Modeling main_logistic.py does (after facebookresearch/msn
logistic_eval.py): features are the class token after the last block of a global-pool ``models_vit``
(``transfer.cls.models.cls_token_features``), on centre crops (Resize 256, CenterCrop 224); both
train and val features go through ``cyanure.preprocess(normalize=True, columns=False,
centering=True)`` (each row centred on its own mean, then L2-normalised); then cyanure's
``MultiClassifier(loss='multiclass-logistic', penalty='l2', fit_intercept=False)`` is fit with
``lambd = 0.1 / n`` (configs/few-shot: ``--lambd 0.1``, divided by the number of training samples),
``tol=1e-3``, ``max_epochs=300``. Its objective is

    min_W  1/n sum_i CE(softmax(W^T x_i), y_i) + lambd / 2 * ||W||_F^2        (W: [D, C], no bias)

Here the same strongly convex objective is minimised in torch by full-batch L-BFGS (strong Wolfe line
search) instead of cyanure's solvers (cyanure is a compiled, Linux-only package). Both approach the one
minimiser; the differences are the stopping rules (cyanure: relative duality gap 1e-3; here: gradient
max-norm ``tol`` or ``max_iter`` iterations), so accuracies can differ in the last decimals.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def preprocess_rows(feats: torch.Tensor) -> torch.Tensor:
    """cyanure.preprocess(centering=True, normalize=True, columns=False): every row minus its mean,
    then scaled to unit L2 norm. [N, D] -> [N, D] float64."""
    x = feats.double()
    return F.normalize(x - x.mean(1, keepdim=True), dim=1)


@dataclass
class LogisticClassifier:
    """A fitted multinomial logistic regression: ``weight`` [D, C], applied to preprocessed rows."""

    weight: torch.Tensor

    def scores(self, feats: torch.Tensor) -> torch.Tensor:
        """Class scores [N, C] of raw features [N, D] (preprocessed as in training)."""
        return preprocess_rows(feats.to(self.weight.device)) @ self.weight


def logistic_objective(weight: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, reg: float) -> torch.Tensor:
    """Mean cross-entropy of x @ weight plus reg / 2 * ||weight||^2 (cyanure's l2 penalty)."""
    return F.cross_entropy(x @ weight, labels) + 0.5 * reg * weight.pow(2).sum()


def fit_logistic(train_feats: torch.Tensor, train_labels: torch.Tensor, num_classes: int, lambd: float = 0.1,
                 max_iter: int = 300, tol: float = 1e-6) -> LogisticClassifier:
    """Fit the few-shot classifier on features [N, D] and labels [N] with regularisation lambd / N
    (the official scaling) -> ``LogisticClassifier``."""
    if train_feats.shape[0] != train_labels.shape[0] or train_feats.shape[0] == 0:
        raise ValueError(f"need as many labels as features (> 0): got {train_feats.shape[0]} features, "
                         f"{train_labels.shape[0]} labels")
    x = preprocess_rows(train_feats)
    labels = train_labels.long().to(x.device)
    reg = lambd / x.shape[0]
    weight = torch.zeros(x.shape[1], num_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([weight], lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = logistic_objective(weight, x, labels, reg)
        loss.backward()
        return loss

    opt.step(closure)
    return LogisticClassifier(weight.detach())
