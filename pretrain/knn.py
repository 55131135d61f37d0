"""Weighted k-nearest-neighbour classification on frozen features, and the kNN quality monitor.

The classifier is DINO's (facebookresearch/dino eval_knn.py ``knn_classifier``): features are
L2-normalised, a query's k most cosine-similar training features vote for their labels with weight
exp(similarity / T), and the class with the largest summed weight wins (k = 20, T = 0.07 in DINO).

``KNNMonitor`` is the callable a pretraining loop invokes every few epochs (the solo-learn / lightly
online-monitor habit): it embeds a small labelled folder (``pretrain.labelled_data`` layout) with the
current encoder and reports kNN top-1 / top-5 and the seconds it took.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
import torchvision.transforms as T

from pretrain.data import IMAGENET_MEAN, IMAGENET_STD
from pretrain.labelled_data import LabelledImages

FeatureFn = Callable[[torch.Tensor], torch.Tensor]  # images [N, 3, H, W] -> features [N, D]


def knn_scores(train_feats: torch.Tensor, train_labels: torch.Tensor, query_feats: torch.Tensor,
               num_classes: int, k: int = 20, temperature: float = 0.07, chunk: int = 256) -> torch.Tensor:
    """Class scores [M, C] of queries [M, D] from training features [N, D] with labels [N]: the sum of
    exp(cos / T) over each query's k nearest training features per class (k clipped to N)."""
    if train_feats.shape[0] != train_labels.shape[0]:
        raise ValueError(f"{train_feats.shape[0]} training features but {train_labels.shape[0]} labels")
    train = F.normalize(train_feats.float(), dim=1)
    labels = train_labels.long().to(train.device)
    k = min(k, train.shape[0])
    out = []
    for start in range(0, query_feats.shape[0], chunk):
        query = F.normalize(query_feats[start:start + chunk].float().to(train.device), dim=1)
        sim, idx = (query @ train.T).topk(k, dim=1)  # [m, k]
        votes = torch.zeros(query.shape[0], num_classes, device=train.device)
        out.append(votes.scatter_add_(1, labels[idx], (sim / temperature).exp()))  # [m, C]
    return torch.cat(out) if out else torch.zeros(0, num_classes)


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: Iterable[int] = (1, 5)) -> tuple[float, ...]:
    """Top-k accuracies in percent of scores [M, C] against labels [M]; each k is clipped to C."""
    if scores.shape[0] == 0:
        raise ValueError("no samples to score: the evaluation set is empty")
    ks = [min(k, scores.shape[1]) for k in ks]
    top = scores.topk(max(ks), dim=1).indices  # [M, kmax]
    hit = top == labels.view(-1, 1).to(top.device)
    return tuple(100.0 * hit[:, :k].any(1).double().mean().item() for k in ks)


@torch.no_grad()
def extract_features(feature_fn: FeatureFn, loader: Iterable, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Features [N, D] float32 (on the CPU) and labels [N] long of every ``(images, labels)`` batch."""
    feats, labels = [], []
    for images, target in loader:
        feats.append(feature_fn(images.to(device, non_blocking=True)).float().cpu())
        labels.append(torch.as_tensor(target).long())
    if not feats:
        raise ValueError("the loader yielded no batches: is the data folder empty?")
    return torch.cat(feats), torch.cat(labels)


def eval_transform(img_size: int) -> T.Compose:
    """The official evaluation transform: bicubic resize to img_size / 0.875, centre crop, normalise
    (facebookresearch/mae util/datasets.py build_transform, is_train=False, for img_size <= 224)."""
    resize = int(img_size / (224 / 256)) if img_size <= 224 else img_size
    return T.Compose([T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(img_size),
                      T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class KNNMonitor:
    """kNN top-1/top-5 of an encoder on a small labelled folder (``train/`` is the memory bank,
    ``val/`` the queries). The caller passes ``feature_fn`` (images -> [N, D] features, run under
    no_grad; the caller puts its model in eval mode) and gets
    ``{'knn_top1', 'knn_top5', 'knn_seconds'}``."""

    def __init__(self, data_dir: str, img_size: int, k: int = 20, temperature: float = 0.07,
                 batch_size: int = 64, num_workers: int = 0):
        transform = eval_transform(img_size)
        self.train_set = LabelledImages(data_dir, "train", transform)
        self.val_set = LabelledImages(data_dir, "val", transform)
        self.k, self.temperature = k, temperature
        self.batch_size, self.num_workers = batch_size, num_workers

    def loader(self, dataset: LabelledImages) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, shuffle=False,
                                           num_workers=self.num_workers)

    def __call__(self, feature_fn: FeatureFn, device: torch.device | str) -> dict:
        start = time.perf_counter()
        train_feats, train_labels = extract_features(feature_fn, self.loader(self.train_set), device)
        val_feats, val_labels = extract_features(feature_fn, self.loader(self.val_set), device)
        scores = knn_scores(train_feats, train_labels, val_feats, self.train_set.num_classes, self.k, self.temperature)
        top1, top5 = topk_accuracy(scores, val_labels, (1, 5))
        return {"knn_top1": top1, "knn_top5": top5, "knn_seconds": time.perf_counter() - start}
