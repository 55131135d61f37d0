"""After a multi-process run: do all processes hold the same parameters (what DDP promises, bit for
bit)? One check for detection and segmentation; torch only."""
from __future__ import annotations

import hashlib
from typing import Callable

import torch
import torch.distributed as dist


def parameters_digest(model: torch.nn.Module) -> str:
    """sha256 over the names and bytes of the parameters (not the buffers: BN statistics may be per
    process), in registration order; a DDP wrapper is looked through."""
    model = getattr(model, "module", model)
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_ranks_agree(model: torch.nn.Module, log: Callable[[str], None]) -> None:
    """With several processes: log that every process holds the same parameters, or raise
    RuntimeError listing the digests when they differ. Nothing with one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    digests: list = [None] * dist.get_world_size()
    dist.all_gather_object(digests, parameters_digest(model))
    if len(set(digests)) != 1:
        raise RuntimeError(f"the processes' parameters differ after training (sha256 per rank): {digests}")
    log(f"parameters after training: identical on all {len(digests)} processes (sha256 {digests[0][:16]})")
