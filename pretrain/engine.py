"""The pretraining loop for MAE, ConvMAE and SIM, readable top to bottom (``train``), plus the small
helpers it needs: config files, lr/momentum schedules, parameter groups, atomic checkpoints with full
resume state, encoder export and the reconstruction grid.

One process on CPU or a GPU, or many under ``torchrun`` (DDP; NCCL on GPU, gloo on CPU). Iterations
are optimizer steps; a step consumes ``batch_size x accum_iter x world_size`` images.
"""
from __future__ import annotations

import ast
import glob
import json
import math
import os
import random
import re
import runpy
import sys
import time
import warnings
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from pretrain.data import (
    IMAGENET_MEAN, IMAGENET_STD, ResumableBatchSampler, build_dataset, num_grid_tokens, sim_relative_crop,
)
from pretrain.models import build_model

# Every knob, with a generic default; paper hyper-parameters live in configs/pretrain/*.py.
DEFAULTS = dict(
    # model
    model="mae_vit_tiny_patch16",  # any pretrain.models name: mae_*, convmae_*, sim_*
    model_kwargs={},  # constructor overrides, e.g. dict(norm_pix_loss=True)
    mask_ratio=0.75,  # MAE / ConvMAE
    # data
    data="",  # image folder tree (any depth) or a list file
    img_size=224,
    crop_scale=(0.2, 1.0),  # MAE RandomResizedCrop scale
    hflip=0.5,
    crop_min=0.08,  # SIM RandomResizedCrop scale minimum
    num_mask_patches=118,  # SIM block-wise mask size (of 14 x 14 at 224)
    min_mask_patches=16,  # SIM: smallest block
    num_workers=4,
    # optimisation
    epochs=800,
    warmup_epochs=40,
    batch_size=64,  # per process and micro-batch
    accum_iter=1,
    blr=1.5e-4,  # lr = blr * effective batch / 256 unless lr is set
    lr=None,
    min_lr=0.0,
    weight_decay=0.05,
    betas=(0.9, 0.95),
    clip_grad=None,
    no_wd_tokens=True,  # no weight decay on cls/mask tokens and pos embeddings (norms, biases never)
    mm=0.995,  # SIM EMA momentum, start value
    mm_schedule="cosine",  # SIM: 'cosine' (to 1 at the end) or 'const'
    # system
    device="auto",  # 'auto', 'cpu', 'cuda'
    dtype="auto",  # 'auto' (bf16 on GPU, fp32 on CPU), 'float32', 'bfloat16', 'float16' (+ GradScaler)
    compile=False,
    grad_checkpointing=False,
    find_unused_parameters=False,
    threads=0,  # torch CPU threads per process, 0 = torch's default
    seed=0,
    # output
    output_dir="",  # default: output/<config file name>
    log_interval=10,  # iterations between log lines
    save_interval=0,  # iterations between mid-epoch checkpoints (0: only at epoch ends)
    save_every_epochs=1,
    keep_last=2,  # checkpoints kept
    vis_every_epochs=20,  # MAE/ConvMAE reconstruction grid (0: never)
    vis_num=4,
    tensorboard=True,
    progress=True,  # progress bar when stderr is a terminal
    resume=False,  # True: latest checkpoint in output_dir; or a checkpoint path
    max_iters=0,  # stop after this many iterations (0: run all epochs); the schedule is unchanged
)


# ---------------------------------------------------------------------------------------- config
def parse_value(text: str):
    """A command-line value: a Python literal when it parses as one, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def read_config_file(path: str) -> dict:
    """The public variables a Python config file defines; ``_base_ = 'other.py'`` (relative to the
    file) is read first and updated by the file's own variables."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    ns = runpy.run_path(path)
    cfg = {}
    if "_base_" in ns:
        cfg = read_config_file(os.path.join(os.path.dirname(os.path.abspath(path)), ns["_base_"]))
    for key, value in ns.items():
        if not key.startswith("_") and not callable(value) and not isinstance(value, type(os)):
            cfg[key] = value
    return cfg


def load_config(path: str | None = None, overrides: list[str] | tuple = (), **kwargs) -> dict:
    """DEFAULTS <- config file <- ``key=value`` overrides (``model_kwargs.x=1`` sets one entry) <- kwargs."""
    cfg = dict(DEFAULTS, model_kwargs={})
    updates = read_config_file(path) if path else {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value (e.g. epochs=10 or model_kwargs.norm_pix_loss=True)")
        key, value = item.split("=", 1)
        if key.startswith("model_kwargs."):
            updates["model_kwargs"] = {**updates.get("model_kwargs", cfg["model_kwargs"]), key[13:]: parse_value(value)}
        else:
            updates[key] = parse_value(value)
    updates.update(kwargs)
    unknown = sorted(set(updates) - set(DEFAULTS))
    if unknown:
        raise KeyError(f"unknown config keys {unknown}; known keys: {', '.join(sorted(DEFAULTS))}")
    cfg.update(updates)
    if not cfg["output_dir"]:
        cfg["output_dir"] = os.path.join("output", os.path.splitext(os.path.basename(path))[0] if path else "pretrain")
    return cfg


def model_family(name: str) -> str:
    for family in ("convmae", "sim", "mae"):
        if name.startswith(family):
            return family
    raise ValueError(f"model {name!r}: expected a name starting with mae_, convmae_ or sim_")


# ---------------------------------------------------------------------------------------- schedules
def lr_at(t: float, cfg: dict, base_lr: float) -> float:
    """Linear warmup then half-cycle cosine to ``min_lr``; ``t`` in epochs (fractional, per iteration),
    as facebookresearch/mae util/lr_sched.py."""
    if t < cfg["warmup_epochs"]:
        return base_lr * t / cfg["warmup_epochs"]
    progress = (t - cfg["warmup_epochs"]) / max(cfg["epochs"] - cfg["warmup_epochs"], 1e-8)
    return cfg["min_lr"] + (base_lr - cfg["min_lr"]) * 0.5 * (1.0 + math.cos(math.pi * progress))


def momentum_at(t: float, cfg: dict) -> float:
    """SIM's EMA momentum: cosine from ``mm`` to 1 over training (engine_pretrain.py), or constant."""
    if cfg["mm_schedule"] == "const":
        return cfg["mm"]
    return 1.0 - 0.5 * (1.0 + math.cos(math.pi * t / cfg["epochs"])) * (1.0 - cfg["mm"])


def param_groups(model: nn.Module, weight_decay: float, no_wd_tokens: bool = True) -> list[dict]:
    """Trainable parameters in two groups: decayed weights, and the rest (1-d: norms and biases; with
    ``no_wd_tokens`` also tokens and position embeddings). The official MAE/SIM code excludes only
    the 1-d ones (timm add_weight_decay / param_groups_weight_decay)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        token = no_wd_tokens and re.search(r"(^|\.)(cls_token|mask_token|pos_embed|[a-z_]*pos_embed)$", name)
        (no_decay if p.ndim <= 1 or name.endswith(".bias") or token else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ---------------------------------------------------------------------------------------- checkpoints
def atomic_save(obj, path: str) -> None:
    """torch.save to a temporary file in the same folder, fsync, then os.replace: a reader never sees
    a partial file, even when the writer is killed."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def checkpoint_paths(output_dir: str) -> list[str]:
    """``checkpoint-<iteration>.pth`` files, oldest first."""
    return sorted(glob.glob(os.path.join(output_dir, "checkpoint-[0-9]*.pth")))


def save_checkpoint(state: dict, output_dir: str, iteration: int, keep_last: int) -> str:
    path = os.path.join(output_dir, f"checkpoint-{iteration:08d}.pth")
    atomic_save(state, path)
    for old in checkpoint_paths(output_dir)[:-keep_last] if keep_last > 0 else []:
        os.remove(old)
    return path


def load_checkpoint(path: str) -> dict:
    """Our own training checkpoint (holds RNG states and the config, hence weights_only=False: only
    load files you trust)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def export_encoder(checkpoint: str, out_path: str) -> str:
    """Training checkpoint -> ``{'model': encoder_state_dict}``, the format of the released
    ``mae_pretrain_vit_base.pth`` etc. (loads with ``pretrain.models.checkpoint.load_pretrained``)."""
    ckpt = load_checkpoint(checkpoint)
    model = build_model(ckpt["config"]["model"], **ckpt["config"]["model_kwargs"])
    model.load_state_dict(ckpt["model"])
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    atomic_save({"model": model.encoder_state_dict()}, out_path)
    return out_path


# ---------------------------------------------------------------------------------------- visuals
@torch.no_grad()
def save_reconstruction_grid(model: nn.Module, imgs: torch.Tensor, noise: torch.Tensor, mask_ratio: float,
                             path: str) -> None:
    """MAE paper Figure 2 as a PNG: rows masked / reconstruction (+ visible patches) / original.
    imgs [N, 3, H, W] (ImageNet-normalised), noise [N, L]."""
    from torchvision.utils import save_image

    was_training = model.training
    model.eval()
    _, pred, mask = model(imgs, mask_ratio=mask_ratio, noise=noise)  # pred [N, L, p*p*3], mask [N, L]
    pred = pred.float()
    if getattr(model, "norm_pix_loss", False):  # back from per-patch normalised pixels
        target = model.patchify(imgs)
        pred = pred * (target.var(-1, keepdim=True) + 1e-6) ** 0.5 + target.mean(-1, keepdim=True)
    grid = (imgs.shape[-2] // model.patch_size, imgs.shape[-1] // model.patch_size)
    rec = model.unpatchify(pred, grid)  # [N, 3, H, W]
    m = model.unpatchify(mask.unsqueeze(-1).expand(-1, -1, pred.shape[-1]).float(), grid)  # 1 = removed
    mean = torch.tensor(IMAGENET_MEAN, device=imgs.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=imgs.device).view(1, 3, 1, 1)
    rows = [imgs * (1 - m), imgs * (1 - m) + rec * m, imgs]
    out = torch.cat([(r * std + mean).clamp(0, 1) for r in rows])  # [3N, 3, H, W]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_image(out.cpu(), path, nrow=imgs.shape[0], padding=2)
    model.train(was_training)


def tensorboard_writer(log_dir: str):
    """A SummaryWriter, or None with a warning when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard is not installed: no TensorBoard scalars (pip install tensorboard)")
        return None
    return SummaryWriter(log_dir)


def format_seconds(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# ---------------------------------------------------------------------------------------- the loop
def forward_step(model: nn.Module, batch: dict, family: str, cfg: dict, device: torch.device) -> torch.Tensor:
    """One micro-batch through the model -> scalar loss."""
    if family == "sim":
        rel = sim_relative_crop(batch["box1"], batch["box2"], batch["flip1"], batch["flip2"])
        rel = type(rel)(*(t.to(device, non_blocking=True) for t in rel))
        x1 = batch["x1"].to(device, non_blocking=True)
        x2 = batch["x2"].to(device, non_blocking=True)
        mask = batch["mask"].to(device, non_blocking=True)
        # the EMA update is done by the loop (outside a compiled graph), hence update_mm=False
        loss, _ = model(x1, x2, rel, 0.0, False, mask=mask, num_masked=cfg["num_mask_patches"])
        return loss
    imgs = batch["image"].to(device, non_blocking=True)
    loss, _, _ = model(imgs, mask_ratio=cfg["mask_ratio"], noise=batch["noise"].to(device, non_blocking=True))
    return loss


def train(cfg: dict) -> dict:
    """Run (or resume) a pretraining job described by ``cfg`` (see DEFAULTS / ``load_config``).
    Returns a summary: final iteration, last logged loss, skipped images, output paths."""
    cfg = {**DEFAULTS, **cfg}
    family = model_family(cfg["model"])

    # ---- processes and devices --------------------------------------------------------------
    ddp = int(os.environ.get("RANK", -1)) != -1
    use_cuda = torch.cuda.is_available() and cfg["device"] in ("auto", "cuda")
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but no CUDA device is visible; use device=cpu")
    if ddp:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        rank, world, local_rank = dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"])
    else:
        rank, world, local_rank = 0, 1, 0
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    master = rank == 0
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    dtype_name = cfg["dtype"]
    if dtype_name == "auto":
        dtype_name = "bfloat16" if use_cuda and torch.cuda.is_bf16_supported() else "float32"
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype_name]
    autocast = nullcontext() if ptdtype == torch.float32 else torch.autocast(device.type, dtype=ptdtype)
    out_dir = cfg["output_dir"]
    if master:
        os.makedirs(out_dir, exist_ok=True)

    bar = None  # tqdm progress bar (master, interactive)

    def log(msg: str) -> None:
        if master and bar is not None:
            bar.write(msg)
        elif master:
            print(msg, flush=True)

    # ---- model (same init on every rank) --------------------------------------------------------
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg["model"], **cfg["model_kwargs"])
    if cfg["grad_checkpointing"]:
        if hasattr(model, "set_grad_checkpointing"):
            model.set_grad_checkpointing(True)
        else:
            model.grad_checkpointing = True
    model.to(device)
    grid = num_grid_tokens(cfg["img_size"], model.patch_size)

    # ---- data -----------------------------------------------------------------------------------
    dataset = build_dataset(cfg, family, grid)
    sampler = ResumableBatchSampler(len(dataset), cfg["batch_size"], world, rank, cfg["seed"])
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=cfg["num_workers"], pin_memory=use_cuda,
        generator=torch.Generator(),  # its worker seeds must not draw from the global RNG (resume)
    )
    accum = cfg["accum_iter"]
    iters_per_epoch = sampler.num_batches // accum
    if iters_per_epoch == 0:
        raise ValueError(f"{sampler.num_batches} micro-batches per epoch < accum_iter {accum}; add images")
    total_iters = iters_per_epoch * cfg["epochs"]
    eff_batch = cfg["batch_size"] * accum * world
    base_lr = cfg["lr"] if cfg["lr"] is not None else cfg["blr"] * eff_batch / 256

    # ---- optimizer ------------------------------------------------------------------------------
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg["weight_decay"], cfg["no_wd_tokens"]), lr=base_lr, betas=tuple(cfg["betas"]),
        fused=use_cuda,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=ptdtype == torch.float16)

    # ---- resume ---------------------------------------------------------------------------------
    epoch, step, iteration, skipped_total = 0, 0, 0, 0  # step: iteration within the epoch
    resume_path = cfg["resume"] if isinstance(cfg["resume"], str) and cfg["resume"] else None
    if cfg["resume"] is True:
        found = checkpoint_paths(out_dir)
        resume_path = found[-1] if found else None
        if resume_path is None and master:
            print(f"resume: no checkpoint in {out_dir}; starting from scratch", flush=True)
    if resume_path:
        ckpt = load_checkpoint(resume_path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        epoch, step, iteration = ckpt["epoch"], ckpt["step"], ckpt["iteration"]
        skipped_total = ckpt.get("skipped_images", 0)
        if (ckpt["world_size"], ckpt["batch_size"], ckpt["accum_iter"]) != (world, cfg["batch_size"], accum):
            warnings.warn("resuming with a different world size / batch size / accum_iter: the data order "
                          "and the iteration count per epoch change")
        rngs = ckpt["rng"]
        set_rng_state(rngs[rank % len(rngs)], device)
        if master:
            print(f"resumed from {resume_path}: epoch {epoch}, iteration {iteration}", flush=True)

    # ---- wrap: SyncBN (SIM's BN projector, as official), compile, DDP ----------------------------
    raw_model = model
    if ddp and family == "sim" and use_cuda:
        model = raw_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cfg["compile"]:
        model = torch.compile(model)
    if ddp:
        model = DDP(model, device_ids=[local_rank] if use_cuda else None,
                    find_unused_parameters=cfg["find_unused_parameters"])

    # ---- logging --------------------------------------------------------------------------------
    if master and cfg["progress"] and sys.stderr.isatty():
        try:
            from tqdm import tqdm
            bar = tqdm(total=total_iters, initial=iteration, dynamic_ncols=True)
        except ImportError:
            pass
    writer = tensorboard_writer(os.path.join(out_dir, "tb")) if master and cfg["tensorboard"] else None
    if master:
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1, default=str)
        log(f"{cfg['model']}: {sum(p.numel() for p in raw_model.parameters()) / 1e6:.2f}M params | {len(dataset)} "
            f"images | {world} process(es) on {device.type} | {dtype_name} | effective batch {eff_batch} | "
            f"lr {base_lr:.3e} | {iters_per_epoch} it/epoch x {cfg['epochs']} epochs")
    vis_samples = [dataset[(0, i)] for i in range(min(cfg["vis_num"], len(dataset)))] if family != "sim" else []

    def checkpoint_now() -> None:
        rngs = [None] * world
        if ddp:
            dist.all_gather_object(rngs, rng_state(device))
        else:
            rngs = [rng_state(device)]
        if master:
            state = {
                "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "epoch": epoch, "step": step, "iteration": iteration, "skipped_images": skipped_total,
                "world_size": world, "batch_size": cfg["batch_size"], "accum_iter": accum,
                "config": cfg, "rng": rngs,
            }
            save_checkpoint(state, out_dir, iteration, cfg["keep_last"])

    # ---- the loop -------------------------------------------------------------------------------
    model.train()
    last_loss, loss_sum, loss_count = float("nan"), torch.zeros((), device=device), 0
    t0, t_start, iter_start = time.time(), time.time(), iteration
    stop_at = min(total_iters, cfg["max_iters"]) if cfg["max_iters"] else total_iters
    while iteration < stop_at:
        sampler.set_epoch(epoch, step * accum)
        batches = iter(loader)
        while step < iters_per_epoch and iteration < stop_at:
            # per-iteration schedules, t in (fractional) epochs
            t = epoch + step / iters_per_epoch
            lr = lr_at(t, cfg, base_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            mm = None
            if family == "sim":  # EMA before the target pass of the first micro-batch (official)
                mm = momentum_at(t, cfg)
                raw_model.update_momentum(mm)
            for micro in range(accum):
                batch = next(batches)
                if ddp:  # sync gradients only on the last micro-batch
                    model.require_backward_grad_sync = micro == accum - 1
                with autocast:
                    loss = forward_step(model, batch, family, cfg, device)
                scaler.scale(loss / accum).backward()
                loss_sum += loss.detach().float()
                loss_count += 1
                skipped_total += int(batch["skipped"].sum())
            grad_norm = None
            if cfg["clip_grad"]:
                scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg["clip_grad"])
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step, iteration = step + 1, iteration + 1
            if step == iters_per_epoch:
                epoch, step = epoch + 1, 0
            if bar is not None:
                bar.update(1)

            # log
            if iteration % cfg["log_interval"] == 0 or iteration == stop_at:
                stats = torch.stack([loss_sum, torch.tensor(float(loss_count), device=device)])
                if ddp:
                    dist.all_reduce(stats)  # also sums skipped counts below
                    skipped = torch.tensor(float(skipped_total), device=device)
                    dist.all_reduce(skipped)
                    skipped_all = int(skipped.item())
                else:
                    skipped_all = skipped_total
                last_loss = (stats[0] / stats[1]).item()
                if not math.isfinite(last_loss):
                    raise FloatingPointError(f"loss is {last_loss} at iteration {iteration}; stopping")
                elapsed = time.time() - t0
                its = (iteration - iter_start) / max(elapsed, 1e-9)
                eta = (stop_at - iteration) / max(its, 1e-9)
                extra = f" | mm {mm:.5f}" if mm is not None else ""
                extra += f" | grad_norm {float(grad_norm):.3f}" if grad_norm is not None else ""
                log(f"it {iteration}/{total_iters} | ep {epoch} | loss {last_loss:.4f} | lr {lr:.3e}{extra} | "
                    f"{its:.2f} it/s | {its * eff_batch:.1f} img/s | eta {format_seconds(eta)} | "
                    f"skipped images {skipped_all}")
                if master:  # one JSON line per log step, like the official log.txt
                    with open(os.path.join(out_dir, "log.jsonl"), "a") as f:
                        f.write(json.dumps({"iteration": iteration, "epoch": t, "loss": last_loss, "lr": lr, "mm": mm,
                                            "it_per_s": its, "skipped_images": skipped_all}) + "\n")
                if writer is not None:
                    writer.add_scalar("train/loss", last_loss, iteration)
                    writer.add_scalar("train/lr", lr, iteration)
                    writer.add_scalar("perf/it_per_s", its, iteration)
                    writer.add_scalar("data/skipped_images", skipped_all, iteration)
                    if mm is not None:
                        writer.add_scalar("train/mm", mm, iteration)
                    if grad_norm is not None:
                        writer.add_scalar("train/grad_norm", float(grad_norm), iteration)
                    if scaler.is_enabled():
                        writer.add_scalar("train/loss_scale", scaler.get_scale(), iteration)
                loss_sum, loss_count, t0, iter_start = torch.zeros((), device=device), 0, time.time(), iteration

            # checkpoint: every save_interval iterations and at epoch ends
            epoch_end = step == 0
            if (cfg["save_interval"] and iteration % cfg["save_interval"] == 0) or (
                epoch_end and (epoch % cfg["save_every_epochs"] == 0 or epoch == cfg["epochs"])
            ) or iteration == stop_at:
                checkpoint_now()
            if epoch_end and master and vis_samples and cfg["vis_every_epochs"] and (
                epoch % cfg["vis_every_epochs"] == 0 or epoch == cfg["epochs"]
            ):
                imgs = torch.stack([s["image"] for s in vis_samples]).to(device)
                noise = torch.stack([s["noise"] for s in vis_samples]).to(device)
                save_reconstruction_grid(raw_model, imgs, noise, cfg["mask_ratio"],
                                         os.path.join(out_dir, "vis", f"epoch_{epoch:04d}.png"))
            if epoch_end:
                break

    # ---- done: export the encoder ---------------------------------------------------------------
    encoder_path = os.path.join(out_dir, "encoder.pth")
    if master:
        atomic_save({"model": raw_model.encoder_state_dict()}, encoder_path)
        log(f"done: {iteration} iterations in {format_seconds(time.time() - t_start)}, "
            f"{skipped_total} unreadable images skipped (this process), encoder -> {encoder_path}")
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    if ddp:
        dist.barrier()
        dist.destroy_process_group()
    return {"iteration": iteration, "loss": last_loss, "skipped_images": skipped_total,
            "output_dir": out_dir, "encoder": encoder_path}
