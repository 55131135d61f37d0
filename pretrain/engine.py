"""The pretraining loop for MAE, ConvMAE and SIM, split as the official MAE code splits it: ``train``
(main_pretrain's main) checks the config, claims the output folder and runs ``setup`` (model, data,
optimizer), ``resume_from``, then ``train_one_epoch`` until done; ``train_step`` is one optimizer step.

What differs between the methods is in ``pretrain.methods`` (one object per method); the config in
``pretrain.config``, checkpoints and resume in ``pretrain.train_state``, logging in ``pretrain.run_log``,
processes and precision in ``pretrain.processes``, parameter groups and schedules in ``pretrain.optim``.

One process on CPU or a GPU, or many under ``torchrun`` (DDP; NCCL on GPU, gloo on CPU). Iterations
are optimizer steps; a step consumes ``batch_size x accum_iter x world_size`` images.
"""
from __future__ import annotations

import json
import os
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from pretrain.checkpoints import atomic_save
from pretrain.config import ConfigError, PretrainConfig, validate_config
from pretrain.data import ResumableBatchSampler, num_grid_tokens, unreadable_indices
from pretrain.knn import KNNMonitor
from pretrain.methods import Method, build_method
from pretrain.models import build_model
from pretrain.optim import lr_at, param_groups
from pretrain.processes import Processes, init_processes, precision
from pretrain.run_dir import claim_run_dir, is_main_process
from pretrain.run_log import RunLog, format_seconds
from pretrain.train_state import load_checkpoint, restore_training_state, resume_path, save_training_state


@dataclass
class Progress:
    """Where the run stands; a checkpoint stores it and resume restores it."""
    epoch: int = 0
    step: int = 0  # optimizer step within the epoch
    iteration: int = 0
    unreadable: set[int] = field(default_factory=set)  # indices of unreadable files met by this process

    def advance(self, iters_per_epoch: int) -> None:
        self.step, self.iteration = self.step + 1, self.iteration + 1
        if self.step == iters_per_epoch:
            self.epoch, self.step = self.epoch + 1, 0


@dataclass
class Run:
    """Everything ``setup`` builds: the model (``raw_model`` unwrapped, ``model`` as trained), data,
    optimizer, the derived schedule sizes and the kNN monitor (rank 0, when ``knn_data`` is set)."""
    cfg: PretrainConfig
    method: Method
    procs: Processes
    dtype_name: str
    autocast: object
    raw_model: nn.Module
    model: nn.Module
    dataset: torch.utils.data.Dataset
    sampler: ResumableBatchSampler
    loader: torch.utils.data.DataLoader
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    iters_per_epoch: int
    total_iters: int
    stop_at: int
    eff_batch: int
    base_lr: float
    knn: KNNMonitor | None


@dataclass
class StepInfo:
    """What one optimizer step reports to the log."""
    epoch: float  # fractional epoch at the step's start
    scalars: dict  # lr, the method's values (SIM: mm), grad_norm


def setup(cfg: PretrainConfig, procs: Processes) -> Run:
    """Model (same init on every rank), data, optimizer and schedule sizes, as MAE's main_pretrain."""
    method, device = build_method(cfg), procs.device
    dtype_name, autocast = precision(cfg.dtype, device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, **cfg.model_kwargs)
    model.set_grad_checkpointing(cfg.grad_checkpointing)
    model.to(device)

    dataset = method.dataset(num_grid_tokens(cfg.img_size, model.patch_size))
    sampler = ResumableBatchSampler(len(dataset), cfg.batch_size, procs.world, procs.rank, cfg.seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,  # one start per run, not per epoch
        generator=torch.Generator(),  # its worker seeds must not draw from the global RNG (resume)
    )
    iters_per_epoch = sampler.num_batches // cfg.accum_iter
    if iters_per_epoch == 0:
        raise ConfigError(
            f"{len(dataset)} images make {sampler.num_batches} micro-batches of {cfg.batch_size} per process and "
            f"epoch, fewer than accum_iter={cfg.accum_iter}: add images or lower batch_size / accum_iter")
    total_iters = iters_per_epoch * cfg.epochs
    eff_batch = cfg.batch_size * cfg.accum_iter * procs.world
    base_lr = cfg.lr if cfg.lr is not None else cfg.blr * eff_batch / 256
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay, cfg.no_wd_tokens), lr=base_lr,
                                  betas=tuple(cfg.betas), fused=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=dtype_name == "float16")
    stop_at = min(total_iters, cfg.max_iters) if cfg.max_iters else total_iters
    knn = KNNMonitor(cfg.knn_data, cfg.img_size, num_workers=cfg.num_workers) if cfg.knn_data and procs.master else None
    return Run(cfg, method, procs, dtype_name, autocast, model, model, dataset, sampler, loader, optimizer, scaler,
               iters_per_epoch, total_iters, stop_at, eff_batch, base_lr, knn)


def wrap_model(run: Run) -> None:
    """SyncBN (where the method has BatchNorm, as official), torch.compile, DDP: ``run.model`` trains."""
    procs, model = run.procs, run.raw_model
    cuda = procs.device.type == "cuda"
    if procs.ddp and run.method.sync_bn and cuda:
        model = run.raw_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if run.cfg.compile:
        model = torch.compile(model)
    if procs.ddp:
        model = DDP(model, device_ids=[procs.local_rank] if cuda else None,
                    find_unused_parameters=run.cfg.find_unused_parameters)
    run.model = model


# ---------------------------------------------------------------------------------------- resume, checkpoints
def resume_from(run: Run, progress: Progress) -> None:
    """Restore model, optimizer, scaler, progress and this rank's RNG states from the checkpoint that
    ``cfg.resume`` names (True: the latest one in the output folder)."""
    cfg, master = run.cfg, run.procs.master
    path = resume_path(cfg.resume, cfg.output_dir)
    if path is None:
        if cfg.resume is True and master:
            print(f"resume: no checkpoint in {cfg.output_dir}; starting from scratch", flush=True)
        return
    ckpt = load_checkpoint(path)
    restore_training_state(ckpt, run.raw_model, run.optimizer, run.scaler, run.procs.rank, run.procs.device)
    progress.epoch, progress.step, progress.iteration = ckpt["epoch"], ckpt["step"], ckpt["iteration"]
    progress.unreadable = set(ckpt.get("unreadable_files", []))
    if (ckpt["world_size"], ckpt["batch_size"], ckpt["accum_iter"]) != (run.procs.world, cfg.batch_size,
                                                                        cfg.accum_iter):
        warnings.warn("resuming with a different world size / batch size / accum_iter: the data order "
                      "and the iteration count per epoch change")
    if master:
        print(f"resumed from {path}: epoch {progress.epoch}, iteration {progress.iteration}", flush=True)


def save_state(run: Run, progress: Progress) -> None:
    """A checkpoint with everything resume needs (the RNG states of every rank: ``save_training_state``)."""
    cfg = run.cfg
    state = {
        "model": run.raw_model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(), "epoch": progress.epoch, "step": progress.step,
        "iteration": progress.iteration, "unreadable_files": sorted(progress.unreadable),
        "world_size": run.procs.world, "batch_size": cfg.batch_size, "accum_iter": cfg.accum_iter,
        "config": cfg.to_dict(),
    }
    save_training_state(state, cfg.output_dir, progress.iteration, cfg.keep_last, run.procs.device)


def checkpoint_due(run: Run, progress: Progress) -> bool:
    """Every ``save_interval`` iterations, at the ends of every ``save_every_epochs`` epochs and of the
    last epoch, and when the run stops."""
    cfg, it = run.cfg, progress.iteration
    epoch_end = progress.step == 0
    return bool((cfg.save_interval and it % cfg.save_interval == 0) or it == run.stop_at or (
        epoch_end and (progress.epoch % cfg.save_every_epochs == 0 or progress.epoch == cfg.epochs)))


def every_epochs(run: Run, epoch: int, period: int) -> bool:
    """Whether an every-``period``-epochs job (pictures, kNN) runs after ``epoch``: and after the last."""
    return bool(period) and (epoch % period == 0 or epoch == run.cfg.epochs)


# ---------------------------------------------------------------------------------------- logging
def open_log(run: Run, progress: Progress) -> RunLog:
    """The run's log; rank 0 also writes config.json and prints the one-line summary of the run."""
    cfg = run.cfg
    log = RunLog(cfg.output_dir, master=run.procs.master, device=run.procs.device, total_iters=run.total_iters,
                 stop_at=run.stop_at, start_iter=progress.iteration, log_interval=cfg.log_interval,
                 images_per_iter=run.eff_batch, progress_bar=cfg.progress, tensorboard=cfg.tensorboard)
    if run.procs.master:
        with open(os.path.join(cfg.output_dir, "config.json"), "w") as f:
            json.dump(cfg.to_dict(), f, indent=1, default=str)
    params = sum(p.numel() for p in run.raw_model.parameters()) / 1e6
    log.message(f"{cfg.model}: {params:.2f}M params | {len(run.dataset)} images | {run.procs.world} process(es) "
                f"on {run.procs.device.type} | {run.dtype_name} | effective batch {run.eff_batch} | "
                f"lr {run.base_lr:.3e} | {run.iters_per_epoch} it/epoch x {cfg.epochs} epochs")
    return log


def skipped_images(run: Run, progress: Progress) -> int:
    """Distinct unreadable files met so far by all ranks (a collective under DDP)."""
    unreadable = [progress.unreadable]
    if run.procs.ddp:
        unreadable = [None] * run.procs.world
        dist.all_gather_object(unreadable, progress.unreadable)
    return len(set().union(*unreadable))


def monitor_knn(run: Run, progress: Progress, log: RunLog) -> None:
    """kNN top-1/top-5 of the current encoder on ``knn_data`` (rank 0; the others wait): eval mode, no
    grad, the global RNG states untouched (a resumed run draws what an uninterrupted one draws)."""
    if run.knn is not None:
        model, device = run.raw_model, run.procs.device
        model.eval()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad(), run.autocast:
            result = run.knn(lambda imgs: run.method.features(model, imgs), device)
        model.train()
        log.record(progress.iteration, result, epoch=progress.epoch)
    if run.procs.ddp:
        dist.barrier()


# ---------------------------------------------------------------------------------------- the loop
def train_step(run: Run, batches, progress: Progress, log: RunLog) -> StepInfo:
    """One optimizer step: per-iteration lr (and the method's before-step work), ``accum_iter`` micro-batches."""
    cfg, accum = run.cfg, run.cfg.accum_iter
    t = progress.epoch + progress.step / run.iters_per_epoch  # schedules run in fractional epochs
    lr = lr_at(t, run.base_lr, cfg.warmup_epochs, cfg.epochs, cfg.min_lr)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    scalars = {"lr": lr, **run.method.before_step(run.raw_model, t)}
    for micro in range(accum):
        batch = next(batches)
        if run.procs.ddp:  # sync gradients only on the last micro-batch
            run.model.require_backward_grad_sync = micro == accum - 1
        with run.autocast:
            loss = run.method.loss(run.model, batch, run.procs.device)
        run.scaler.scale(loss / accum).backward()
        log.add_loss(loss)
        progress.unreadable |= unreadable_indices(batch)
    if cfg.clip_grad:
        run.scaler.unscale_(run.optimizer)
        scalars["grad_norm"] = torch.nn.utils.clip_grad_norm_(run.raw_model.parameters(), cfg.clip_grad)
    if run.scaler.is_enabled():
        scalars["loss_scale"] = run.scaler.get_scale()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return StepInfo(t, scalars)


def end_of_epoch(run: Run, progress: Progress, log: RunLog, vis_samples: list[dict]) -> None:
    """After epoch ``progress.epoch``: the kNN monitor (before the checkpoint: a run killed during it
    measures again on resume), the checkpoint, the picture."""
    cfg, epoch = run.cfg, progress.epoch
    if cfg.knn_data and every_epochs(run, epoch, cfg.knn_every_epochs):
        monitor_knn(run, progress, log)
    if checkpoint_due(run, progress):
        save_state(run, progress)
    if run.procs.master and vis_samples and every_epochs(run, epoch, cfg.vis_every_epochs):
        run.method.visualize(run.raw_model, vis_samples, os.path.join(cfg.output_dir, "vis", f"epoch_{epoch:04d}.png"),
                             run.procs.device)


def train_one_epoch(run: Run, progress: Progress, log: RunLog, vis_samples: list[dict]) -> None:
    """The rest of the current epoch (from ``progress.step``: resume lands mid-epoch), or up to
    ``stop_at``; checkpoints, kNN and the reconstruction grid on the way."""
    run.sampler.set_epoch(progress.epoch, progress.step * run.cfg.accum_iter)
    batches = iter(run.loader)
    while progress.step < run.iters_per_epoch and progress.iteration < run.stop_at:
        info = train_step(run, batches, progress, log)
        progress.advance(run.iters_per_epoch)
        log.tick()
        if log.due(progress.iteration):
            log.interval(progress.iteration, info.epoch, info.scalars,
                         {"skipped_images": skipped_images(run, progress)})
        if progress.step == 0:  # the epoch ended
            end_of_epoch(run, progress, log, vis_samples)
            break
        if checkpoint_due(run, progress):
            save_state(run, progress)


def train(cfg: PretrainConfig) -> dict:
    """Run (or resume) a pretraining job described by ``cfg`` (``pretrain.config.load_config``).
    Returns a summary: final iteration, last logged loss, skipped images, output paths."""
    cfg = validate_config(cfg)
    # the main process claims the output folder before anything is written (pretrain/run_dir.py)
    claim = claim_run_dir(cfg.output_dir, resume=bool(cfg.resume), overwrite=cfg.overwrite,
                          resume_flag="--resume (or --resume-from CKPT)") if is_main_process() else nullcontext()
    with claim:
        procs = init_processes(cfg.device, cfg.threads)
        try:
            return _train(cfg, procs)
        finally:
            if procs.ddp:
                dist.destroy_process_group()


def _train(cfg: PretrainConfig, procs: Processes) -> dict:
    run = setup(cfg, procs)
    progress = Progress()
    resume_from(run, progress)
    wrap_model(run)
    log = open_log(run, progress)
    vis_samples = run.method.visual_samples(run.dataset, cfg.vis_num)
    run.model.train()
    while progress.iteration < run.stop_at:
        train_one_epoch(run, progress, log, vis_samples)

    encoder_path = os.path.join(cfg.output_dir, "encoder.pth")
    if procs.master:
        atomic_save({"model": run.raw_model.encoder_state_dict()}, encoder_path)
        log.message(f"done: {progress.iteration} iterations in {format_seconds(log.elapsed)}, "
                    f"{len(progress.unreadable)} unreadable image files skipped (this process), "
                    f"encoder -> {encoder_path}")
    log.close()
    if procs.ddp:
        dist.barrier()
    return {"iteration": progress.iteration, "loss": log.last_loss, "skipped_images": len(progress.unreadable),
            "output_dir": cfg.output_dir, "encoder": encoder_path}
