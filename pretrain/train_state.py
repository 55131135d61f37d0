"""Training state on disk: atomic ``checkpoint-<iteration>.pth`` files (the last ``keep_last`` kept) with
the RNG states of every rank, finding the one to resume from, restoring it, and exporting the encoder.

Generic: a checkpoint is a dict the trainer fills (``model``, ``optimizer``, its progress, ``config`` as
plain data); ``save_training_state`` adds ``rng`` (one entry per rank) and writes it from rank 0. The
pretraining loop (``pretrain.engine``) and the classification trainer both save through it. Files are
read back without running code from them (``pretrain.checkpoints``).
"""
from __future__ import annotations

import glob
import os
import random

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from pretrain.checkpoints import CheckpointKind, atomic_save, expect_kind, read_checkpoint
from pretrain.models import build_model

TRAINING_CHECKPOINT = "a training checkpoint of tools/train_mim.py (checkpoint-*.pth)"


def checkpoint_paths(output_dir: str) -> list[str]:
    """``checkpoint-<iteration>.pth`` files, oldest first."""
    return sorted(glob.glob(os.path.join(output_dir, "checkpoint-[0-9]*.pth")))


def save_checkpoint(state: dict, output_dir: str, iteration: int, keep_last: int) -> str:
    """``state`` -> ``output_dir/checkpoint-<iteration>.pth`` (atomic: never visible half-written); then
    all but the newest ``keep_last`` are deleted (0: keep every one)."""
    path = os.path.join(output_dir, f"checkpoint-{iteration:08d}.pth")
    atomic_save(state, path)
    for old in checkpoint_paths(output_dir)[:-keep_last] if keep_last > 0 else []:
        os.remove(old)
    return path


def load_checkpoint(path: str, what: str = TRAINING_CHECKPOINT) -> dict:
    """A training checkpoint, read without running code from the file; any other kind of file is
    refused with what to do with it (``what`` names what was expected)."""
    ckpt = read_checkpoint(path)
    expect_kind(ckpt, path, {CheckpointKind.TRAINING_STATE}, what)
    return ckpt


def rng_state(device: torch.device) -> dict:
    """This process's torch / numpy / Python (and CUDA) RNG states."""
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


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def save_training_state(state: dict, output_dir: str, iteration: int, keep_last: int,
                        device: torch.device) -> str | None:
    """Add ``rng`` (the RNG states of every rank, gathered: a collective under DDP, call it on every
    rank) to ``state`` and save it from rank 0 -> its path there, None on the other ranks."""
    rngs = [rng_state(device)]
    if _distributed():
        rngs = [None] * dist.get_world_size()
        dist.all_gather_object(rngs, rng_state(device))
    if _distributed() and dist.get_rank() != 0:
        return None
    return save_checkpoint({**state, "rng": rngs}, output_dir, iteration, keep_last)


def resume_path(resume: bool | str, output_dir: str) -> str | None:
    """The checkpoint ``resume`` asks for: a path as given; True: the newest in ``output_dir`` (None
    when there is none yet); False: None."""
    if isinstance(resume, str) and resume:
        return resume
    if resume is True:
        found = checkpoint_paths(output_dir)
        return found[-1] if found else None
    return None


def restore_training_state(ckpt: dict, model: nn.Module, optimizer: torch.optim.Optimizer,
                           scaler: torch.amp.GradScaler | None, rank: int, device: torch.device) -> None:
    """Load model, optimizer (and scaler) states and this rank's RNG states (a run resumed with more
    ranks than it was saved with reuses them cyclically)."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scaler is not None:
        scaler.load_state_dict(ckpt["scaler"])
    rngs = ckpt["rng"]
    set_rng_state(rngs[rank % len(rngs)], device)


def export_encoder(checkpoint: str, out_path: str) -> str:
    """Pretraining checkpoint -> ``{'model': encoder_state_dict}``, the format of the released
    ``mae_pretrain_vit_base.pth`` etc. (loads with ``pretrain.checkpoints.load_pretrained``)."""
    ckpt = load_checkpoint(checkpoint)
    model = build_model(ckpt["config"]["model"], **ckpt["config"]["model_kwargs"])
    model.load_state_dict(ckpt["model"])
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    atomic_save({"model": model.encoder_state_dict()}, out_path)
    return out_path
