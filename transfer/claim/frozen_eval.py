"""Frozen-feature classification of one initialisation: kNN and a linear probe at several label budgets.

The encoder is the pretraining model of a config (``pretrain.models.build_model`` after
``torch.manual_seed(cfg.seed)``, exactly as the pretraining engine starts it): left there it is the random
initialisation, or the newest checkpoint of its pretraining run is loaded (strictly) into it. So a
random-init row and a pretrained row of the same seed differ in nothing but the weights. Features are
pooled (``Method.features(..., pool=POOL)``: the layer-normalised mean of the last block's patch
tokens, the global-pool feature of MAE's fine-tuning and SIM's linear probe; at this scale the class
token MAE's kNN monitor reads carries almost nothing), on the official evaluation transform; kNN is
DINO's weighted vote (k 20, T 0.07; ``pretrain.knn``), the linear probe an L2-regularised multinomial
logistic regression on the frozen features (``transfer.cls.fewshot``).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from pretrain.config import PretrainConfig
from pretrain.knn import eval_transform, extract_features, knn_scores, topk_accuracy
from pretrain.labelled_data import LabelledImages
from pretrain.methods import Method, build_method
from pretrain.models import build_model
from pretrain.train_state import checkpoint_paths, load_checkpoint
from transfer.cls.fewshot import fit_logistic

ALL_LABELS = 0  # label budget meaning "every training image"
POOL = "mean"  # the features' pooling, for every method (pretrain.methods.Method.features)


def build_encoder(cfg: PretrainConfig, run_dir: str | os.PathLike | None) -> tuple[nn.Module, Method]:
    """The pretraining model of ``cfg`` at its seed's initialisation, with the newest checkpoint of
    ``run_dir`` loaded when given (eval mode) -> (model, method)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, **cfg.model_kwargs)
    if run_dir is not None:
        paths = checkpoint_paths(str(run_dir))
        if not paths:
            raise FileNotFoundError(f"no checkpoint-*.pth in {run_dir}: run its pretraining first")
        model.load_state_dict(load_checkpoint(paths[-1])["model"])
    return model.eval(), build_method(cfg)


def embed(model: nn.Module, method: Method, dataset: LabelledImages, batch_size: int = 128
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features [N, D] and labels [N] of every image of ``dataset`` (no grad, CPU)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    return extract_features(lambda images: method.features(model, images, POOL), loader, "cpu")


def subset_rows(dataset: LabelledImages, data_dir: str | os.PathLike, subset_file: Path) -> torch.Tensor:
    """Indices into ``dataset.samples`` (``data_dir``'s train split) of the files a subset list names."""
    sub = LabelledImages(data_dir, "train", subset_file=subset_file)
    position = {path: i for i, (path, _) in enumerate(dataset.samples)}
    return torch.tensor([position[path] for path, _ in sub.samples])


def probe_scores(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                 num_classes: int, lambd: float) -> dict[str, float]:
    """kNN and linear-probe top-1 (%) on ``val`` of a classifier built from ``train`` (features, labels)."""
    knn = knn_scores(*train, val[0], num_classes)
    probe = fit_logistic(*train, num_classes, lambd=lambd).scores(val[0])
    return {"knn": topk_accuracy(knn, val[1], (1,))[0], "linprobe": topk_accuracy(probe, val[1], (1,))[0]}


def evaluate(cfg: PretrainConfig, run_dir: str | os.PathLike | None, data_dir: str | os.PathLike,
             label_budgets: tuple[int, ...], lambd: float = 0.1) -> dict[str, float]:
    """{'knn@<n>', 'linprobe@<n>'} top-1 (%) on ``data_dir``/val for each label budget n (balanced
    subsets ``data_dir/subset<n>.txt``; ``ALL_LABELS``: every training image, written 'all')."""
    model, method = build_encoder(cfg, run_dir)
    transform = eval_transform(cfg.img_size)
    train_set = LabelledImages(data_dir, "train", transform)
    train = embed(model, method, train_set)
    val = embed(model, method, LabelledImages(data_dir, "val", transform))
    results = {}
    for n in label_budgets:
        rows = (torch.arange(len(train[1])) if n == ALL_LABELS
                else subset_rows(train_set, data_dir, Path(data_dir) / f"subset{n}.txt"))
        scores = probe_scores((train[0][rows], train[1][rows]), val, train_set.num_classes, lambd)
        results.update({f"{name}@{n or 'all'}": value for name, value in scores.items()})
    return results
