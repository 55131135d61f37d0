"""The pretraining loop for MAE, ConvMAE and SIM, split as the official MAE code splits it: ``train``
(main_pretrain's main) checks the config, claims the output folder and runs ``setup`` (processes,
model, data, optimizer), ``resume_from``, then ``train_one_epoch`` until done; ``train_step`` is one
optimizer step, ``RunLog`` the logging (speed and ETA) and ``save_training_state`` the checkpoints.
Around it the small helpers: config files and their validation, lr/momentum schedules, parameter
groups, atomic checkpoints with full resume state, encoder export and the reconstruction grid.

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
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from pretrain.data import (
    IMAGENET_MEAN, IMAGENET_STD, ResumableBatchSampler, build_dataset, num_grid_tokens, sim_relative_crop,
    to_model_input, unreadable_indices,
)
from pretrain.checkpoint_io import CheckpointKind, atomic_save, expect_kind, read_checkpoint
from pretrain.models import build_model
from pretrain.run_dir import claim_run_dir, is_main_process

# Every knob, with a generic default; paper hyper-parameters live in configs/pretrain/*.py.
DEFAULTS = dict(
    # model
    model="mae_vit_tiny",  # any pretrain.models name: mae_*, convmae_*, sim_*
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
    lr=None,  # absolute lr; must be > 0 (lr=0 is refused: it would train nothing)
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
    overwrite=False,  # True: delete the run already in output_dir and start again (else it is refused)
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


class ConfigError(ValueError):
    """A config value no run can use; the message names each key, its value and what is allowed."""


def _int_from(low: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False):
    def check(v) -> bool:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            return False
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    return check


def _one_of(*choices):
    return lambda v: v in choices


def _optional(check):
    return lambda v: v is None or check(v)


# key -> (check, what is allowed); every value a run reads is checked before anything is built
VALUE_RULES = {
    "epochs": (_int_from(1), "an integer >= 1"),
    "batch_size": (_int_from(1), "an integer >= 1 (images per process and micro-batch)"),
    "accum_iter": (_int_from(1), "an integer >= 1"),
    "warmup_epochs": (_number(0), "a number >= 0"),
    "img_size": (_int_from(1), "an integer >= 1 (pixels)"),
    "num_workers": (_int_from(0), "an integer >= 0"),
    "threads": (_int_from(0), "an integer >= 0 (0: torch's default)"),
    "seed": (_int_from(0), "an integer >= 0"),
    "lr": (_optional(_number(0, low_open=True)), "a number > 0, or None to use blr * effective batch / 256"),
    "blr": (_number(0, low_open=True), "a number > 0"),
    "min_lr": (_number(0), "a number >= 0"),
    "weight_decay": (_number(0), "a number >= 0"),
    "clip_grad": (_optional(_number(0, low_open=True)), "a number > 0, or None for no clipping"),
    "mask_ratio": (_number(0, 1, low_open=True, high_open=True), "a number in (0, 1)"),
    "hflip": (_number(0, 1), "a probability in [0, 1]"),
    "crop_min": (_number(0, 1, low_open=True), "a number in (0, 1]"),
    "num_mask_patches": (_int_from(1), "an integer >= 1"),
    "min_mask_patches": (_int_from(1), "an integer >= 1"),
    "mm": (_number(0, 1), "a number in [0, 1]"),
    "mm_schedule": (_one_of("cosine", "const"), "'cosine' or 'const'"),
    "device": (_one_of("auto", "cpu", "cuda"), "'auto', 'cpu' or 'cuda'"),
    "dtype": (_one_of("auto", "float32", "bfloat16", "float16"), "'auto', 'float32', 'bfloat16' or 'float16'"),
    "log_interval": (_int_from(1), "an integer >= 1 (iterations)"),
    "save_interval": (_int_from(0), "an integer >= 0 (0: only at epoch ends)"),
    "save_every_epochs": (_int_from(1), "an integer >= 1"),
    "keep_last": (_int_from(0), "an integer >= 0 (0: keep every checkpoint)"),
    "vis_every_epochs": (_int_from(0), "an integer >= 0 (0: never)"),
    "vis_num": (_int_from(0), "an integer >= 0"),
    "max_iters": (_int_from(0), "an integer >= 0 (0: run all epochs)"),
    "resume": (lambda v: isinstance(v, (bool, str)), "True, False or a checkpoint path"),
    "overwrite": (_one_of(True, False), "True or False"),
    "output_dir": (lambda v: isinstance(v, str) and v != "", "a folder path (load_config sets output/<config name>)"),
}


def validate_config(cfg: dict) -> dict:
    """``cfg`` unchanged when every value is one a run can use; else a ConfigError listing each bad
    key with its value and what is allowed (e.g. batch_size=0 or epochs=0 would train nothing)."""
    bad = [f"{key}={cfg[key]!r} (expected {allowed})" for key, (ok, allowed) in VALUE_RULES.items() if not ok(cfg[key])]
    try:
        model_family(cfg["model"])
    except ValueError as e:
        bad.append(str(e))
    if cfg["resume"] and cfg["overwrite"]:
        bad.append("resume and overwrite are both set: resume continues the run in output_dir, overwrite deletes "
                   "it; set one")
    if bad:
        raise ConfigError("invalid pretraining config: " + "; ".join(bad))
    return cfg


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
    """A training checkpoint of this loop (``checkpoint-*.pth``), read without running code from the file
    (``pretrain.checkpoint_io``); any other file is refused with what to do with it."""
    ckpt = read_checkpoint(path)
    expect_kind(ckpt, path, {CheckpointKind.TRAINING_STATE}, "a training checkpoint of tools/train_mim.py (checkpoint-*.pth)")
    return ckpt


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


# ---------------------------------------------------------------------------------------- setup
@dataclass
class Processes:
    """Where this process runs: DDP rank and world size (1 without torchrun) and its device."""
    ddp: bool
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def master(self) -> bool:
        return self.rank == 0


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
    optimizer and the derived schedule sizes."""
    cfg: dict
    family: str
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


def init_processes(cfg: dict) -> Processes:
    """DDP under torchrun (NCCL on GPU, gloo on CPU), the device, TF32 and the CPU thread count."""
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
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    return Processes(ddp, rank, world, local_rank, device)


def precision(cfg: dict, device: torch.device) -> tuple[str, object]:
    """The training dtype's name and its autocast context ('auto': bf16 on a GPU that has it, else fp32)."""
    name = cfg["dtype"]
    if name == "auto":
        name = "bfloat16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    return name, nullcontext() if ptdtype == torch.float32 else torch.autocast(device.type, dtype=ptdtype)


def setup(cfg: dict, procs: Processes) -> Run:
    """Model (same init on every rank), data, optimizer and schedule sizes, as MAE's main_pretrain."""
    family, device = model_family(cfg["model"]), procs.device
    dtype_name, autocast = precision(cfg, device)
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg["model"], **cfg["model_kwargs"])
    model.set_grad_checkpointing(cfg["grad_checkpointing"])
    model.to(device)

    dataset = build_dataset(cfg, family, num_grid_tokens(cfg["img_size"], model.patch_size))
    sampler = ResumableBatchSampler(len(dataset), cfg["batch_size"], procs.world, procs.rank, cfg["seed"])
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=cfg["num_workers"], pin_memory=device.type == "cuda",
        persistent_workers=cfg["num_workers"] > 0,  # one start per run, not per epoch
        generator=torch.Generator(),  # its worker seeds must not draw from the global RNG (resume)
    )
    accum = cfg["accum_iter"]
    iters_per_epoch = sampler.num_batches // accum
    if iters_per_epoch == 0:
        raise ConfigError(
            f"{len(dataset)} images make {sampler.num_batches} micro-batches of {cfg['batch_size']} per process and "
            f"epoch, fewer than accum_iter={accum}: add images or lower batch_size / accum_iter")
    total_iters = iters_per_epoch * cfg["epochs"]
    eff_batch = cfg["batch_size"] * accum * procs.world
    base_lr = cfg["lr"] if cfg["lr"] is not None else cfg["blr"] * eff_batch / 256
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg["weight_decay"], cfg["no_wd_tokens"]), lr=base_lr, betas=tuple(cfg["betas"]),
        fused=device.type == "cuda",
    )
    scaler = torch.amp.GradScaler(device.type, enabled=dtype_name == "float16")
    stop_at = min(total_iters, cfg["max_iters"]) if cfg["max_iters"] else total_iters
    return Run(cfg, family, procs, dtype_name, autocast, model, model, dataset, sampler, loader, optimizer, scaler,
               iters_per_epoch, total_iters, stop_at, eff_batch, base_lr)


def wrap_model(run: Run) -> None:
    """SyncBN (SIM's BN projector, as official), torch.compile, DDP: ``run.model`` is what trains."""
    procs, model = run.procs, run.raw_model
    cuda = procs.device.type == "cuda"
    if procs.ddp and run.family == "sim" and cuda:
        model = run.raw_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if run.cfg["compile"]:
        model = torch.compile(model)
    if procs.ddp:
        model = DDP(model, device_ids=[procs.local_rank] if cuda else None,
                    find_unused_parameters=run.cfg["find_unused_parameters"])
    run.model = model


# ---------------------------------------------------------------------------------------- resume, checkpoints
def resume_from(run: Run, progress: Progress) -> None:
    """Restore model, optimizer, scaler, progress and this rank's RNG states from the checkpoint that
    ``cfg['resume']`` names (True: the latest one in the output folder)."""
    cfg, out_dir, master = run.cfg, run.cfg["output_dir"], run.procs.master
    path = cfg["resume"] if isinstance(cfg["resume"], str) and cfg["resume"] else None
    if cfg["resume"] is True:
        found = checkpoint_paths(out_dir)
        path = found[-1] if found else None
        if path is None and master:
            print(f"resume: no checkpoint in {out_dir}; starting from scratch", flush=True)
    if not path:
        return
    ckpt = load_checkpoint(path)
    run.raw_model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scaler.load_state_dict(ckpt["scaler"])
    progress.epoch, progress.step, progress.iteration = ckpt["epoch"], ckpt["step"], ckpt["iteration"]
    progress.unreadable = set(ckpt.get("unreadable_files", []))
    if (ckpt["world_size"], ckpt["batch_size"], ckpt["accum_iter"]) != (run.procs.world, cfg["batch_size"],
                                                                        cfg["accum_iter"]):
        warnings.warn("resuming with a different world size / batch size / accum_iter: the data order "
                      "and the iteration count per epoch change")
    rngs = ckpt["rng"]
    set_rng_state(rngs[run.procs.rank % len(rngs)], run.procs.device)
    if master:
        print(f"resumed from {path}: epoch {progress.epoch}, iteration {progress.iteration}", flush=True)


def save_training_state(run: Run, progress: Progress) -> None:
    """A checkpoint with everything resume needs, the RNG states of every rank included."""
    procs = run.procs
    rngs = [None] * procs.world
    if procs.ddp:
        dist.all_gather_object(rngs, rng_state(procs.device))
    else:
        rngs = [rng_state(procs.device)]
    if procs.master:
        cfg = run.cfg
        state = {
            "model": run.raw_model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scaler": run.scaler.state_dict(), "epoch": progress.epoch, "step": progress.step,
            "iteration": progress.iteration, "unreadable_files": sorted(progress.unreadable),
            "world_size": procs.world,
            "batch_size": cfg["batch_size"], "accum_iter": cfg["accum_iter"], "config": cfg, "rng": rngs,
        }
        save_checkpoint(state, cfg["output_dir"], progress.iteration, cfg["keep_last"])


def checkpoint_due(run: Run, progress: Progress) -> bool:
    """Every ``save_interval`` iterations, at the ends of every ``save_every_epochs`` epochs and of the
    last epoch, and when the run stops."""
    cfg, it = run.cfg, progress.iteration
    epoch_end = progress.step == 0
    return bool((cfg["save_interval"] and it % cfg["save_interval"] == 0) or it == run.stop_at or (
        epoch_end and (progress.epoch % cfg["save_every_epochs"] == 0 or progress.epoch == cfg["epochs"])))


# ---------------------------------------------------------------------------------------- logging
@dataclass
class StepInfo:
    """What one optimizer step reports to the log."""
    t: float  # fractional epoch at the step's start
    lr: float
    mm: float | None
    grad_norm: torch.Tensor | None


class RunLog:
    """The screen (a tqdm bar on a terminal), log.jsonl and TensorBoard of the master process; the
    loss is averaged over the micro-batches of each log interval (and over ranks)."""

    def __init__(self, run: Run, progress: Progress):
        self.run, master, cfg = run, run.procs.master, run.cfg
        self.bar = None
        if master and cfg["progress"] and sys.stderr.isatty():
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=run.total_iters, initial=progress.iteration, dynamic_ncols=True)
            except ImportError:
                pass
        use_tb = master and cfg["tensorboard"]
        self.writer = tensorboard_writer(os.path.join(cfg["output_dir"], "tb")) if use_tb else None
        self.last_loss = float("nan")
        self.t_start = time.time()
        self._reset(progress.iteration)

    def _reset(self, iteration: int) -> None:
        self.loss_sum, self.loss_count = torch.zeros((), device=self.run.procs.device), 0
        self.t0, self.iter_start = time.time(), iteration

    def message(self, msg: str) -> None:
        if not self.run.procs.master:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def add_loss(self, loss: torch.Tensor) -> None:
        self.loss_sum += loss.detach().float()
        self.loss_count += 1

    def after_step(self, progress: Progress, info: StepInfo) -> None:
        if self.bar is not None:
            self.bar.update(1)
        if progress.iteration % self.run.cfg["log_interval"] == 0 or progress.iteration == self.run.stop_at:
            self.interval(progress, info)

    def _reduced(self, progress: Progress) -> tuple[float, int]:
        """Mean loss of the interval and the skipped images of all ranks."""
        device = self.run.procs.device
        stats = torch.stack([self.loss_sum, torch.tensor(float(self.loss_count), device=device)])
        unreadable = [progress.unreadable]
        if self.run.procs.ddp:
            dist.all_reduce(stats)
            unreadable = [None] * self.run.procs.world
            dist.all_gather_object(unreadable, progress.unreadable)
        return (stats[0] / stats[1]).item(), len(set().union(*unreadable))  # distinct files, all ranks

    def interval(self, progress: Progress, info: StepInfo) -> None:
        """One log line with speed and ETA, one log.jsonl record, the TensorBoard scalars."""
        run, it = self.run, progress.iteration
        loss, skipped = self._reduced(progress)
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss is {loss} at iteration {it}; stopping")
        self.last_loss = loss
        its = (it - self.iter_start) / max(time.time() - self.t0, 1e-9)
        eta = (run.stop_at - it) / max(its, 1e-9)
        extra = f" | mm {info.mm:.5f}" if info.mm is not None else ""
        extra += f" | grad_norm {float(info.grad_norm):.3f}" if info.grad_norm is not None else ""
        self.message(f"it {it}/{run.total_iters} | ep {progress.epoch} | loss {loss:.4f} | lr {info.lr:.3e}{extra} | "
                     f"{its:.2f} it/s | {its * run.eff_batch:.1f} img/s | elapsed "
                     f"{format_seconds(time.time() - self.t_start)} | eta {format_seconds(eta)} | "
                     f"skipped images {skipped}")
        if run.procs.master:  # one JSON line per log step, like the official log.txt
            with open(os.path.join(run.cfg["output_dir"], "log.jsonl"), "a") as f:
                f.write(json.dumps({"iteration": it, "epoch": info.t, "loss": loss, "lr": info.lr, "mm": info.mm,
                                    "it_per_s": its, "eta_s": round(eta, 1), "skipped_images": skipped}) + "\n")
        self.scalars(it, loss, its, skipped, info)
        self._reset(it)

    def scalars(self, it: int, loss: float, its: float, skipped: int, info: StepInfo) -> None:
        if self.writer is None:
            return
        w = self.writer
        w.add_scalar("train/loss", loss, it)
        w.add_scalar("train/lr", info.lr, it)
        w.add_scalar("perf/it_per_s", its, it)
        w.add_scalar("data/skipped_images", skipped, it)
        if info.mm is not None:
            w.add_scalar("train/mm", info.mm, it)
        if info.grad_norm is not None:
            w.add_scalar("train/grad_norm", float(info.grad_norm), it)
        if self.run.scaler.is_enabled():
            w.add_scalar("train/loss_scale", self.run.scaler.get_scale(), it)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def write_run_header(run: Run, log: RunLog) -> None:
    """config.json and the one-line summary of the run (master only)."""
    if not run.procs.master:
        return
    cfg = run.cfg
    with open(os.path.join(cfg["output_dir"], "config.json"), "w") as f:
        json.dump(cfg, f, indent=1, default=str)
    params = sum(p.numel() for p in run.raw_model.parameters()) / 1e6
    log.message(f"{cfg['model']}: {params:.2f}M params | {len(run.dataset)} images | {run.procs.world} process(es) "
                f"on {run.procs.device.type} | {run.dtype_name} | effective batch {run.eff_batch} | "
                f"lr {run.base_lr:.3e} | {run.iters_per_epoch} it/epoch x {cfg['epochs']} epochs")


# ---------------------------------------------------------------------------------------- the loop
def forward_step(model: nn.Module, batch: dict, family: str, cfg: dict, device: torch.device) -> torch.Tensor:
    """One micro-batch through the model -> scalar loss."""
    if family == "sim":
        rel = sim_relative_crop(batch["box1"], batch["box2"], batch["flip1"], batch["flip2"])
        rel = type(rel)(*(t.to(device, non_blocking=True) for t in rel))
        x1, x2 = to_model_input(batch["x1"], device), to_model_input(batch["x2"], device)
        mask = batch["mask"].to(device, non_blocking=True)
        # the EMA update is done by the loop (outside a compiled graph), hence update_mm=False
        loss, _ = model(x1, x2, rel, 0.0, False, mask=mask, num_masked=cfg["num_mask_patches"])
        return loss
    imgs = to_model_input(batch["image"], device)
    loss, _, _ = model(imgs, mask_ratio=cfg["mask_ratio"], noise=batch["noise"].to(device, non_blocking=True))
    return loss


def train_step(run: Run, batches, progress: Progress, log: RunLog) -> StepInfo:
    """One optimizer step: per-iteration lr (and SIM momentum), ``accum_iter`` micro-batches."""
    cfg, accum = run.cfg, run.cfg["accum_iter"]
    t = progress.epoch + progress.step / run.iters_per_epoch  # schedules run in fractional epochs
    lr = lr_at(t, cfg, run.base_lr)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    mm = None
    if run.family == "sim":  # EMA before the target pass of the first micro-batch (official)
        mm = momentum_at(t, cfg)
        run.raw_model.update_momentum(mm)
    for micro in range(accum):
        batch = next(batches)
        if run.procs.ddp:  # sync gradients only on the last micro-batch
            run.model.require_backward_grad_sync = micro == accum - 1
        with run.autocast:
            loss = forward_step(run.model, batch, run.family, cfg, run.procs.device)
        run.scaler.scale(loss / accum).backward()
        log.add_loss(loss)
        progress.unreadable |= unreadable_indices(batch)
    grad_norm = None
    if cfg["clip_grad"]:
        run.scaler.unscale_(run.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(run.raw_model.parameters(), cfg["clip_grad"])
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return StepInfo(t, lr, mm, grad_norm)


def maybe_visualize(run: Run, epoch: int, vis_samples: list[dict]) -> None:
    """The reconstruction grid every ``vis_every_epochs`` epochs and after the last (MAE/ConvMAE)."""
    cfg = run.cfg
    if not (run.procs.master and vis_samples and cfg["vis_every_epochs"]):
        return
    if epoch % cfg["vis_every_epochs"] == 0 or epoch == cfg["epochs"]:
        device = run.procs.device
        imgs = to_model_input(torch.stack([s["image"] for s in vis_samples]), device)
        noise = torch.stack([s["noise"] for s in vis_samples]).to(device)
        save_reconstruction_grid(run.raw_model, imgs, noise, cfg["mask_ratio"],
                                 os.path.join(cfg["output_dir"], "vis", f"epoch_{epoch:04d}.png"))


def train_one_epoch(run: Run, progress: Progress, log: RunLog, vis_samples: list[dict]) -> None:
    """The rest of the current epoch (from ``progress.step``: resume lands mid-epoch), or up to
    ``stop_at``; checkpoints and the reconstruction grid on the way."""
    run.sampler.set_epoch(progress.epoch, progress.step * run.cfg["accum_iter"])
    batches = iter(run.loader)
    while progress.step < run.iters_per_epoch and progress.iteration < run.stop_at:
        info = train_step(run, batches, progress, log)
        progress.advance(run.iters_per_epoch)
        log.after_step(progress, info)
        if checkpoint_due(run, progress):
            save_training_state(run, progress)
        if progress.step == 0:  # the epoch ended
            maybe_visualize(run, progress.epoch, vis_samples)
            break


def train(cfg: dict) -> dict:
    """Run (or resume) a pretraining job described by ``cfg`` (see DEFAULTS / ``load_config``).
    Returns a summary: final iteration, last logged loss, skipped images, output paths."""
    cfg = validate_config({**DEFAULTS, **cfg})
    # the main process claims the output folder before anything is written (pretrain/run_dir.py)
    claim = claim_run_dir(cfg["output_dir"], resume=bool(cfg["resume"]), overwrite=cfg["overwrite"],
                          resume_flag="--resume (or --resume-from CKPT)") if is_main_process() else nullcontext()
    with claim:
        procs = init_processes(cfg)
        try:
            return _train(cfg, procs)
        finally:
            if procs.ddp:
                dist.destroy_process_group()


def _train(cfg: dict, procs: Processes) -> dict:
    run = setup(cfg, procs)
    progress = Progress()
    resume_from(run, progress)
    wrap_model(run)
    log = RunLog(run, progress)
    write_run_header(run, log)
    vis_samples = [run.dataset[(0, i)] for i in range(min(cfg["vis_num"], len(run.dataset)))] \
        if run.family != "sim" else []
    run.model.train()
    while progress.iteration < run.stop_at:
        train_one_epoch(run, progress, log, vis_samples)

    encoder_path = os.path.join(cfg["output_dir"], "encoder.pth")
    if procs.master:
        atomic_save({"model": run.raw_model.encoder_state_dict()}, encoder_path)
        log.message(f"done: {progress.iteration} iterations in {format_seconds(time.time() - log.t_start)}, "
                    f"{len(progress.unreadable)} unreadable image files skipped (this process), "
                    f"encoder -> {encoder_path}")
    log.close()
    if procs.ddp:
        dist.barrier()
    return {"iteration": progress.iteration, "loss": log.last_loss, "skipped_images": len(progress.unreadable),
            "output_dir": cfg["output_dir"], "encoder": encoder_path}
