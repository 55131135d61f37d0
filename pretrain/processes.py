"""Where a training process runs: DDP under torchrun (NCCL on GPU, gloo on CPU) or one process, its
device, and the training precision (autocast dtype). Shared by the pretraining and classification loops."""
from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Processes:
    """DDP rank and world size (1 without torchrun) and this process's device."""
    ddp: bool
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def master(self) -> bool:
        return self.rank == 0


def init_processes(device: str = "auto", threads: int = 0) -> Processes:
    """DDP under torchrun, the device ('auto': a GPU when one is visible, 'cpu', 'cuda'), TF32 and the
    CPU thread count (0: torch's default)."""
    ddp = int(os.environ.get("RANK", -1)) != -1
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but no CUDA device is visible; use device=cpu")
    if ddp:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        rank, world, local_rank = dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"])
    else:
        rank, world, local_rank = 0, 1, 0
    dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if threads:
        torch.set_num_threads(threads)
    return Processes(ddp, rank, world, local_rank, dev)


def precision(dtype: str, device: torch.device) -> tuple[str, object]:
    """The training dtype's name and its autocast context ('auto': bf16 on a GPU that has it, else fp32;
    'float32', 'bfloat16', 'float16')."""
    name = dtype
    if name == "auto":
        name = "bfloat16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    return name, nullcontext() if ptdtype == torch.float32 else torch.autocast(device.type, dtype=ptdtype)
