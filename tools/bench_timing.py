"""Timing and peak-memory helpers of tools/benchmark.py (not a tool; imported by it).

Times come from ``torch.utils.benchmark.Timer``: on CUDA wall time (the Timer synchronises), on the CPU
the process's CPU time (``time.process_time``), which a shared machine's other jobs disturb less than
wall time. Comparisons run their cases alternately, round by round, so that any drift in the machine's
load falls on every case alike. Peak memory: on CUDA the allocator's peak above the state before the
call; on the CPU the peak of torch's CPU allocator during the call above its start, read from
``torch.profiler``'s memory events (``profile_memory=True``: every allocation and free with the running
"Total Allocated"), which counts tensors only, not the Python process.
"""
from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from contextlib import nullcontext
from typing import Callable

import torch
from torch.utils.benchmark import Timer

from pretrain.encoders import ENCODERS
from pretrain.models import build_model
from pretrain.models.sim.masking import block_wise_mask
from pretrain.models.sim.geometry import relative_crop


def seconds_per_call(fn: Callable[[], object], device: torch.device, number: int = 1, cpu_time: bool = True) -> float:
    """Mean seconds of ``fn()`` over ``number`` calls (CUDA: wall; CPU: process CPU-seconds, or wall
    without ``cpu_time``)."""
    clock = {"timer": time.process_time} if cpu_time and device.type != "cuda" else {}
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads(), **clock)
    return timer.timeit(number).mean


def alternating_seconds(cases: dict[str, Callable[[], object]], rounds: int, warmup: int,
                        device: torch.device) -> dict[str, list[float]]:
    """Each case's seconds per call in each of ``rounds`` rounds; a round calls every case once, in turn."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            times[name].append(seconds_per_call(fn, device))
    return times


def peak_gib(fn: Callable[[], object], device: torch.device) -> float:
    """GiB of tensor memory allocated at the peak of ``fn()``, above the state before the call."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**30
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = [e["args"] for e in json.load(f)["traceEvents"] if e.get("name") == "[memory]"]
    if not events:
        return 0.0
    base = events[0]["Total Allocated"] - events[0]["Bytes"]  # allocated when the profiler started counting
    return (max(e["Total Allocated"] for e in events) - base) / 2**30


def train_step_seconds(step: Callable[[], torch.Tensor], opt: torch.optim.Optimizer, iters: int, warmup: int,
                       device: torch.device, dtype: torch.dtype) -> float:
    """Wall seconds per training step (``step() -> loss``, backward, optimizer step), after ``warmup`` steps."""
    ctx = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()

    def train_step() -> None:
        with ctx:
            loss = step()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        train_step()
    return seconds_per_call(train_step, device, iters, cpu_time=False)


def measure(step: Callable[[], torch.Tensor], opt: torch.optim.Optimizer, iters: int, warmup: int,
            device: torch.device, dtype: torch.dtype) -> tuple[float, float]:
    """-> (wall seconds per training step, peak memory in GiB: CUDA's peak allocation, or on the CPU the
    process's max RSS so far)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = train_step_seconds(step, opt, iters, warmup, device, dtype)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.empty_cache()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB, process max
    return seconds, peak


def make_step(model: torch.nn.Module, name: str, batch: int, img_size: int, device: torch.device):
    """A closure computing one training loss on random inputs of the model's pretraining method."""
    x = torch.randn(batch, 3, img_size, img_size, device=device)
    if ENCODERS[name].family == "sim":
        g = img_size // model.patch_size
        num = int(round(118 / 196 * g * g))
        mask = torch.stack([block_wise_mask(g, num, min(16, num)) for _ in range(batch)]).to(device)
        box = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * batch)
        rel = type(relative_crop(box, box))(*(t.to(device) for t in relative_crop(box, box)))
        return lambda: model(x, x, rel, 0.995, True, mask=mask, num_masked=num)[0]
    return lambda: model(x, mask_ratio=0.75)[0]


def time_training(name: str, batch: int, img_size: int, iters: int, warmup: int, device: torch.device,
                  dtype: torch.dtype, **model_kwargs) -> tuple[float, float]:
    """-> (images per second, peak memory in GiB) of one pretraining model's training step."""
    model = build_model(name, img_size=img_size, **model_kwargs).to(device).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                            fused=device.type == "cuda")
    seconds, peak = measure(make_step(model, name, batch, img_size, device), opt, iters, warmup, device, dtype)
    return batch / seconds, peak
