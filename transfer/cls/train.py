"""ImageNet-style classification of an encoder: fine-tuning and linear probing (an optimizer loop, as
facebookresearch/mae main_finetune.py / main_linprobe.py and engine_finetune.py), kNN and few-shot
classification on frozen features (``transfer.cls.frozen``). ``tools/train_cls.py`` is the command line.

One process on CPU or a GPU, or many under ``torchrun`` (DDP; NCCL on GPU, gloo on CPU). An iteration is
an optimizer step of ``batch_size x accum_iter x world`` images; lr = blr x that / 256. Every run writes
``results.json`` (acc1, acc5, ...) into its output folder, atomically; fine-tuning and probing also
write checkpoints (``pretrain.train_state``: atomic, RNG of every rank), log.jsonl and TensorBoard
(``pretrain.run_log``) and evaluate after every ``eval_every_epochs`` epochs.
"""
from __future__ import annotations

import json
import os
import random
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from pretrain.config import ConfigError
from pretrain.knn import topk_accuracy
from pretrain.labelled_data import LabelledImages
from pretrain.optim import lr_at
from pretrain.processes import Processes, init_processes, precision
from pretrain.run_dir import atomic_write_text, claim_run_dir, is_main_process
from pretrain.run_log import RunLog
from pretrain.train_state import load_checkpoint, resume_path, restore_training_state, save_training_state
from transfer.cls import frozen
from transfer.cls.config import ClsConfig
from transfer.cls.data import batches_per_epoch, build_datasets, eval_loader, mixup_fn, train_loader
from transfer.cls.setup import build_criterion, build_optimizer, build_protocol_model
from transfer.rank_agreement import check_ranks_agree

CHECKPOINT_WHAT = "a training checkpoint of tools/train_cls.py (checkpoint-*.pth)"


@dataclass
class Progress:
    """Where a training run stands; checkpoints store it."""
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps done within the current epoch
    iteration: int = 0  # optimizer steps done in all
    checkpoint: str | None = None  # the file it continues (or evaluates)


@dataclass
class Trainer:
    """What ``setup_training`` builds."""
    cfg: ClsConfig
    procs: Processes
    autocast: object
    raw_model: nn.Module
    model: nn.Module
    train_set: LabelledImages
    val_set: LabelledImages
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    mixup: object
    iters_per_epoch: int
    total_iters: int
    stop_at: int
    eff_batch: int
    base_lr: float


# ------------------------------------------------------------------------------------------ entry
def run(cfg: ClsConfig, eval_only: bool = False, resume: bool = False, overwrite: bool = False) -> dict:
    """Run ``cfg`` and return its results (what results.json holds). The main process claims the
    output folder first (``pretrain.run_dir``): one that holds another run is refused unless resuming,
    evaluating (``eval_only``) or ``overwrite``."""
    cfg.validate()
    claim = claim_run_dir(cfg.output_dir, resume=resume or eval_only, overwrite=overwrite) if is_main_process() \
        else nullcontext()
    with claim:
        procs = init_processes(cfg.device, cfg.threads)
        try:
            train_set, val_set = build_datasets(cfg)
            if not cfg.trained:
                results = frozen.evaluate_frozen(cfg, train_set, val_set, procs.device) if procs.master else {}
            else:
                results = train_or_evaluate(cfg, procs, train_set, val_set, eval_only, resume)
            results = {**run_facts(cfg, train_set, val_set, eval_only), **results}
            if procs.master:
                atomic_write_text(os.path.join(cfg.output_dir, "results.json"), json.dumps(results, indent=1) + "\n")
                print(f"results: {json.dumps(results)}", flush=True)
        finally:
            if procs.ddp:
                dist.destroy_process_group()
    return results


def run_facts(cfg: ClsConfig, train_set: LabelledImages, val_set: LabelledImages, eval_only: bool) -> dict:
    """What results.json says about the run besides its accuracies."""
    return {"protocol": cfg.protocol, "backbone": cfg.model, "weights": cfg.weights or "random init",
            "epochs": cfg.epochs if cfg.trained else 0, "eval_only": eval_only, "num_classes": train_set.num_classes,
            "n_train": len(train_set), "n_val": len(val_set), "input_size": cfg.input_size}


# ------------------------------------------------------------------------------------------ setup
def setup_training(cfg: ClsConfig, procs: Processes, train_set: LabelledImages, val_set: LabelledImages,
                   eval_only: bool) -> Trainer:
    """Model (same init on every rank), optimizer, loss and schedule sizes, as main_finetune.py /
    main_linprobe.py."""
    torch.manual_seed(cfg.seed)  # the same initial model on every rank
    _, autocast = precision(cfg.dtype, procs.device)
    raw = build_protocol_model(cfg, train_set.num_classes, eval_only).to(procs.device)
    seed_rngs(cfg.seed + procs.rank)  # augmentation, mixup, drop path: per rank (main_finetune.py: seed + rank)
    model = DDP(raw, device_ids=[procs.local_rank] if procs.device.type == "cuda" else None) if procs.ddp else raw
    iters_per_epoch = batches_per_epoch(train_set, cfg, procs.world) // cfg.accum_iter
    if iters_per_epoch == 0:
        raise ConfigError(f"{len(train_set)} training images make fewer micro-batches of {cfg.batch_size} per process "
                         f"than accum_iter={cfg.accum_iter}: add images or lower batch_size / accum_iter")
    eff_batch = cfg.batch_size * cfg.accum_iter * procs.world
    base_lr = cfg.lr if cfg.lr is not None else cfg.blr * eff_batch / 256
    total_iters = iters_per_epoch * cfg.epochs
    stop_at = min(total_iters, cfg.max_iters) if cfg.max_iters else total_iters
    scaler = torch.amp.GradScaler(procs.device.type, enabled=cfg.dtype == "float16")
    return Trainer(cfg, procs, autocast, raw, model, train_set, val_set, build_optimizer(cfg, raw, base_lr), scaler,
                   build_criterion(cfg), mixup_fn(cfg, train_set.num_classes), iters_per_epoch, total_iters, stop_at,
                   eff_batch, base_lr)


def seed_rngs(seed: int) -> None:
    """torch, numpy and Python RNGs (timm's crops draw from ``random``, its mixup from numpy)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def restore(tr: Trainer, eval_only: bool, resume: bool) -> Progress:
    """Continue the output folder's newest checkpoint (``resume``), or load it for evaluation
    (``eval_only`` without --weights); a new run starts at zero."""
    cfg, progress = tr.cfg, Progress()
    path = resume_path(resume or (eval_only and not cfg.weights), cfg.output_dir)
    if (eval_only and not cfg.weights) and path is None:
        raise FileNotFoundError(f"--eval-only needs a checkpoint: pass --weights FILE (a fine-tuned model), or an "
                                f"--output folder holding checkpoint-*.pth (none in {cfg.output_dir})")
    if path is None:
        if resume and tr.procs.master:
            print(f"--resume: no checkpoint in {cfg.output_dir} yet; a new run starts", flush=True)
        return progress
    ckpt = load_checkpoint(path, CHECKPOINT_WHAT)
    restore_training_state(ckpt, tr.raw_model, tr.optimizer, tr.scaler, tr.procs.rank, tr.procs.device)
    progress.epoch, progress.step, progress.iteration = ckpt["epoch"], ckpt["step"], ckpt["iteration"]
    progress.checkpoint = path
    if tr.procs.master:
        print(f"{'evaluating' if eval_only else 'resumed from'} {path}: epoch {progress.epoch}, iteration "
              f"{progress.iteration}", flush=True)
    return progress


# ------------------------------------------------------------------------------------------ the loop
def train_or_evaluate(cfg: ClsConfig, procs: Processes, train_set: LabelledImages, val_set: LabelledImages,
                      eval_only: bool, resume: bool) -> dict:
    """Fine-tune / probe (then the final evaluation), or only evaluate -> {'acc1', 'acc5', 'loss', ...}."""
    tr = setup_training(cfg, procs, train_set, val_set, eval_only)
    progress = restore(tr, eval_only, resume)
    if eval_only:  # results.json names the checkpoint evaluated when --weights did not
        return {**({"weights": progress.checkpoint} if progress.checkpoint else {}), **evaluate(tr)}
    log = RunLog(cfg.output_dir, master=procs.master, device=procs.device, total_iters=tr.total_iters,
                 stop_at=tr.stop_at, start_iter=progress.iteration, log_interval=cfg.log_interval,
                 images_per_iter=tr.eff_batch, progress_bar=cfg.progress, tensorboard=cfg.tensorboard)
    log.message(f"{cfg.protocol} {cfg.model}: {len(train_set)} training / {len(val_set)} validation images, "
                f"{train_set.num_classes} classes | {procs.world} process(es) on {procs.device.type} | effective "
                f"batch {tr.eff_batch} | lr {tr.base_lr:.3e} | {tr.iters_per_epoch} it/epoch x {cfg.epochs} epochs")
    metrics, best = {}, 0.0
    try:
        while progress.iteration < tr.stop_at:
            train_one_epoch(tr, progress, log)
            done = progress.iteration == tr.stop_at
            if done or (progress.step == 0 and progress.epoch % cfg.eval_every_epochs == 0):
                metrics = evaluate(tr)
                best = max(best, metrics["acc1"])
                log.record(progress.iteration, {f"val_{k}": v for k, v in metrics.items()}, progress.epoch, "val")
            save_state(tr, progress)
        check_ranks_agree(tr.model, log.message)
    finally:
        log.close()
    metrics = metrics or evaluate(tr)  # nothing was left to train (a finished run resumed)
    return {**metrics, "max_acc1": max(best, metrics["acc1"])}


def train_one_epoch(tr: Trainer, progress: Progress, log: RunLog) -> None:
    """Optimizer steps until the epoch ends or the run stops (engine_finetune.py train_one_epoch: the lr
    set per step, loss / accum_iter, one step every accum_iter micro-batches)."""
    cfg, device = tr.cfg, tr.procs.device
    loader = train_loader(tr.train_set, cfg, tr.procs.rank, tr.procs.world, progress.epoch,
                          skip_batches=progress.step * cfg.accum_iter)
    tr.model.train(True)
    batches = iter(loader)
    while progress.step < tr.iters_per_epoch and progress.iteration < tr.stop_at:
        t = progress.epoch + progress.step / tr.iters_per_epoch
        lr = lr_at(t, tr.base_lr, cfg.warmup_epochs, cfg.epochs, cfg.min_lr)
        for group in tr.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        for micro in range(cfg.accum_iter):
            images, targets = next(batches)
            last = micro == cfg.accum_iter - 1
            with (nullcontext() if last or not tr.procs.ddp else tr.model.no_sync()):
                loss = micro_batch_loss(tr, images.to(device, non_blocking=True), targets.to(device, non_blocking=True))
                tr.scaler.scale(loss / cfg.accum_iter).backward()
            log.add_loss(loss)
        optimizer_step(tr)
        progress.step, progress.iteration = progress.step + 1, progress.iteration + 1
        log.tick()
        if log.due(progress.iteration):
            log.interval(progress.iteration, t, {"lr": lr})
    if progress.step == tr.iters_per_epoch:
        progress.epoch, progress.step = progress.epoch + 1, 0


def micro_batch_loss(tr: Trainer, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mixup / cutmix (finetune), the forward pass under autocast and the loss of one micro-batch."""
    if tr.mixup is not None:
        images, targets = tr.mixup(images, targets)
    with tr.autocast:
        return tr.criterion(tr.model(images), targets)


def optimizer_step(tr: Trainer) -> None:
    """Unscale, clip (``clip_grad``), step, zero the gradients (timm NativeScaler as the official loop)."""
    if tr.cfg.clip_grad is not None:
        tr.scaler.unscale_(tr.optimizer)
        torch.nn.utils.clip_grad_norm_(tr.raw_model.parameters(), tr.cfg.clip_grad)
    tr.scaler.step(tr.optimizer)
    tr.scaler.update()
    tr.optimizer.zero_grad(set_to_none=True)


def save_state(tr: Trainer, progress: Progress) -> None:
    """A checkpoint at every epoch end and when the run stops (every rank calls it: RNG gathering)."""
    cfg = tr.cfg
    state = {"model": tr.raw_model.state_dict(), "optimizer": tr.optimizer.state_dict(),
             "scaler": tr.scaler.state_dict(), "epoch": progress.epoch, "step": progress.step,
             "iteration": progress.iteration, "world_size": tr.procs.world, "config": cfg.to_dict(),
             "classes": tr.train_set.classes}
    save_training_state(state, cfg.output_dir, progress.iteration, cfg.keep_last, tr.procs.device)


# ------------------------------------------------------------------------------------------ evaluation
def evaluate(tr: Trainer) -> dict:
    """``evaluate_model`` of the trainer's model on its validation set."""
    return evaluate_model(tr.raw_model, tr.val_set, tr.cfg, tr.procs, tr.autocast)


@torch.no_grad()
def evaluate_model(model: nn.Module, dataset: torch.utils.data.Dataset, cfg: ClsConfig, procs: Processes,
                   autocast: object = nullcontext()) -> dict:
    """Top-1 / top-5 (%) and the mean cross-entropy of ``model`` on ``dataset`` (engine_finetune.py
    evaluate); each process scores its share, the counts are summed over processes: every image counts once."""
    device = procs.device
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # top-1 hits, top-5 hits, loss sum, images
    for images, labels in eval_loader(dataset, cfg, procs.rank, procs.world):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast:
            logits = model(images).float()
        top1, top5 = topk_accuracy(logits, labels, (1, 5))
        n = labels.shape[0]
        loss = nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        # topk_accuracy gives this batch's percentages; the hit counts are integers
        totals += torch.tensor([round(top1 * n / 100), round(top5 * n / 100), loss, n], dtype=torch.float64,
                               device=device)
    if procs.ddp:
        dist.all_reduce(totals)
    hits1, hits5, loss_sum, n = totals.tolist()
    return {"acc1": 100.0 * hits1 / n, "acc5": 100.0 * hits5 / n, "loss": loss_sum / n}
