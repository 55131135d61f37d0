"""Classification data as the official recipes build it: the labelled folders
(``pretrain.labelled_data``), the per-protocol transforms, the loaders and mixup / cutmix.

- finetune, training: timm ``create_transform(is_training=True)`` with RandAugment, bicubic, random
  erasing (facebookresearch/mae util/datasets.py ``build_transform``); mixup / cutmix by timm ``Mixup``
  on the batch (main_finetune.py).
- linprobe, training: RandomResizedCrop(input_size, bicubic) + horizontal flip (main_linprobe.py).
- evaluation, and the frozen features of knn: bicubic resize to input_size / 0.875, centre crop
  (``pretrain.knn.eval_transform``, build_transform with is_train=False; DINO eval_knn.py the same).
- fewshot, training and validation images: Resize(256) with torchvision's default (bilinear) filter +
  CenterCrop(224) (OpenGVLab/Siamese-Image-Modeling main_logistic.py), scaled with input_size.
"""
from __future__ import annotations

from typing import Callable

import torch
import torchvision.transforms as T
from timm.data import Mixup, create_transform
from torch.utils.data import DataLoader, DistributedSampler

from pretrain.config import ConfigError
from pretrain.data import IMAGENET_MEAN, IMAGENET_STD
from pretrain.knn import eval_transform
from pretrain.labelled_data import LabelledImages
from transfer.cls.config import ClsConfig


def train_transform(cfg: ClsConfig) -> Callable:
    """The training transform of ``cfg.protocol``; knn and fewshot embed the training images as they
    embed the validation images (``eval_transform_of``)."""
    if cfg.protocol == "finetune":
        return create_transform(
            input_size=cfg.input_size, is_training=True, color_jitter=cfg.color_jitter,
            auto_augment=cfg.aa or None, interpolation="bicubic", re_prob=cfg.reprob, re_mode=cfg.remode,
            re_count=cfg.recount, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        )
    if cfg.protocol == "linprobe":
        return T.Compose([
            T.RandomResizedCrop(cfg.input_size, interpolation=T.InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ])
    return eval_transform_of(cfg)


def eval_transform_of(cfg: ClsConfig) -> Callable:
    """The validation transform of ``cfg.protocol`` (see the module doc)."""
    if cfg.protocol == "fewshot":
        return T.Compose([T.Resize(int(cfg.input_size / 0.875)), T.CenterCrop(cfg.input_size), T.ToTensor(),
                          T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return eval_transform(cfg.input_size)


def build_datasets(cfg: ClsConfig) -> tuple[LabelledImages, LabelledImages]:
    """(training set, validation set); the classes are the folders of ``train/`` (a ``val/`` class
    absent from ``train/`` is refused), the training set is cut to ``subset_list`` for fewshot."""
    subset = cfg.subset_list if cfg.protocol == "fewshot" else None
    train = LabelledImages(cfg.data, "train", train_transform(cfg), subset_file=subset)
    val = LabelledImages(cfg.data, "val", eval_transform_of(cfg))
    return train, val


def train_loader(dataset: LabelledImages, cfg: ClsConfig, rank: int, world: int, epoch: int,
                 skip_batches: int = 0) -> DataLoader:
    """Epoch ``epoch``'s shuffled micro-batches of ``batch_size`` for process ``rank`` of ``world``, the
    last incomplete one dropped (official ``drop_last=True``). The order is DistributedSampler's for
    (seed, epoch), also for one process, so N processes see the images one process sees;
    ``skip_batches`` leaves out the first micro-batches (a run resumed mid-epoch). The loader's own
    generator, seeded by (seed, epoch), seeds its workers: creating it draws nothing from the global RNG,
    whose state a checkpoint restores (a resumed run draws the augmentations an uninterrupted one draws:
    exactly with num_workers=0, and from epoch boundaries also with workers)."""
    if len(dataset) < cfg.batch_size * world:
        raise ConfigError(f"{len(dataset)} training images make no full batch of {cfg.batch_size} per process x "
                         f"{world} process(es): lower batch_size or add images")
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    sampler.set_epoch(epoch)
    indices = list(sampler)[skip_batches * cfg.batch_size:]
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=indices, num_workers=cfg.num_workers,
                      pin_memory=torch.cuda.is_available(), drop_last=True,
                      generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))


def batches_per_epoch(dataset: LabelledImages, cfg: ClsConfig, world: int) -> int:
    """Micro-batches per process and epoch (``train_loader`` without skipping)."""
    return len(DistributedSampler(dataset, num_replicas=world, rank=0, shuffle=False)) // cfg.batch_size


def eval_loader(dataset: LabelledImages, cfg: ClsConfig, rank: int = 0, world: int = 1) -> DataLoader:
    """This process's share of ``dataset`` in order: indices rank, rank + world, ... (every image is
    evaluated exactly once over all processes: no padding duplicates). Its own generator: evaluating
    draws nothing from the global RNG (training continues as without the evaluation)."""
    indices = range(rank, len(dataset), world)
    return DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=cfg.batch_size, shuffle=False,
                      num_workers=cfg.num_workers, pin_memory=torch.cuda.is_available(), generator=torch.Generator())


def mixup_fn(cfg: ClsConfig, num_classes: int) -> Mixup | None:
    """timm ``Mixup`` with the official arguments (main_finetune.py), None when mixup and cutmix are off.
    It mixes the batch and returns label-smoothed soft targets."""
    if not cfg.uses_mixup:
        return None
    return Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, cutmix_minmax=None, prob=cfg.mixup_prob,
                 switch_prob=cfg.mixup_switch_prob, mode=cfg.mixup_mode, label_smoothing=cfg.smoothing,
                 num_classes=num_classes)
