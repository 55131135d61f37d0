"""Benchmarks (not tests). Subcommands:

    python tools/benchmark.py pretrain [--models ...] [--batch-sizes 8 32] [--img-size 224] [--iters 5]
    python tools/benchmark.py det [--img-size 1024] [--batch 1] [--iters 3]

det: forward + backward + AdamW step time and peak memory of the detection backbones (ViT-B with
ViTDet's windows, the same ViT-B with global attention in every block, ConvMAE-B) at 1024x1024.

pretrain: training throughput (images/s of forward + backward + AdamW step) and peak memory per model
and batch size on the present device, and MAE's asymmetric-encoder speedup: the same MAE with the
encoder on the 25% visible tokens versus on all tokens with mask tokens (``encoder_mask_tokens=True``,
the paper's Table 1c ablation "encoder w/ [M]"), as a ratio measured in the same run. The MAE paper
reports 2.8-4.1x for large models (Table 2).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from contextlib import nullcontext

import _toolpath  # noqa: F401  (must come first: see tools/_toolpath.py)

import torch

from pretrain.models import build_model
from pretrain.models.masking import block_wise_mask
from pretrain.models.pos_embed import relative_crop


def make_step(model: torch.nn.Module, name: str, batch: int, img_size: int, device: torch.device):
    """A closure running one training step on random inputs of the model's kind."""
    x = torch.randn(batch, 3, img_size, img_size, device=device)
    if name.startswith("sim"):
        g = img_size // model.patch_size
        num = int(round(118 / 196 * g * g))
        mask = torch.stack([block_wise_mask(g, num, min(16, num)) for _ in range(batch)]).to(device)
        box = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * batch)
        rel = type(relative_crop(box, box))(*(t.to(device) for t in relative_crop(box, box)))
        return lambda: model(x, x, rel, 0.995, True, mask=mask, num_masked=num)[0]
    return lambda: model(x, mask_ratio=0.75)[0]


def measure(step, opt: torch.optim.Optimizer, iters: int, warmup: int, device: torch.device,
            dtype: torch.dtype) -> tuple[float, float]:
    """Run ``step() -> loss`` + backward + optimizer step; -> (seconds per timed iteration, peak memory
    in GiB: CUDA allocated, or the process's max RSS on CPU)."""
    ctx = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + iters):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        with ctx:
            loss = step()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB, process max
    seconds = (time.perf_counter() - t0) / iters
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return seconds, peak


def time_training(name: str, batch: int, img_size: int, iters: int, warmup: int, device: torch.device,
                  dtype: torch.dtype, **model_kwargs) -> tuple[float, float]:
    """-> (images per second, peak memory in GiB)."""
    model = build_model(name, img_size=img_size, **model_kwargs).to(device).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                            fused=device.type == "cuda")
    seconds, peak = measure(make_step(model, name, batch, img_size, device), opt, iters, warmup, device, dtype)
    return batch / seconds, peak


def pretrain(args: argparse.Namespace) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32, "float32": torch.float32,
             "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {where} | dtype {dtype} | img {args.img_size} | {args.iters} timed iterations after {args.warmup}")
    mem = "peak GiB (CUDA allocated)" if device.type == "cuda" else "peak GiB (process max RSS, cumulative)"
    print(f"{'model':28s} {'batch':>5s} {'img/s':>9s} {mem}")
    for name in args.models:
        for batch in args.batch_sizes:
            try:
                ips, peak = time_training(name, batch, args.img_size, args.iters, args.warmup, device, dtype)
                print(f"{name:28s} {batch:5d} {ips:9.1f} {peak:.2f}", flush=True)
            except torch.OutOfMemoryError:
                print(f"{name:28s} {batch:5d} {'OOM':>9s}", flush=True)
                torch.cuda.empty_cache()
    print("\nMAE asymmetric encoder (visible tokens only) vs encoder on all tokens with mask tokens:")
    for name in args.speedup_models:
        batch = args.speedup_batch
        fast, _ = time_training(name, batch, args.img_size, args.iters, args.warmup, device, dtype)
        slow, _ = time_training(name, batch, args.img_size, args.iters, args.warmup, device, dtype,
                                encoder_mask_tokens=True)
        print(f"{name:28s} batch {batch}: {fast:.1f} vs {slow:.1f} img/s -> speedup {fast / slow:.2f}x", flush=True)


DET_BACKBONES = {  # label -> (transfer.backbones name, overrides)
    "ViT-B windowed (ViTDet)": ("vit_base_patch16", {}),
    "ViT-B all global": ("vit_base_patch16", {"window_size": 0}),
    "ConvMAE-B (ConvViTDet)": ("convmae_base", {}),
}


def det(args: argparse.Namespace) -> None:
    """Detection backbones: forward + backward (+ AdamW step) time and peak memory at img_size."""
    from transfer.backbones import build_backbone

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {where} | dtype {dtype} | {args.img_size}x{args.img_size} | batch {args.batch} | "
          f"{args.iters} timed iterations after {args.warmup}")
    x = torch.randn(args.batch, 3, args.img_size, args.img_size, device=device)
    times = {}
    for label, (name, overrides) in DET_BACKBONES.items():
        model = build_backbone(name, img_size=args.img_size, **overrides).to(device).train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        step = lambda: sum(f.float().mean() for f in model(x).values())  # noqa: E731
        times[label], peak = measure(step, opt, args.iters, args.warmup, device, dtype)
        print(f"{label:26s} {times[label]:8.3f} s/iter  peak {peak:.2f} GiB", flush=True)
        del model, opt
    first, second = list(times)[:2]
    print(f"ViT-B time ratio all-global / windowed: {times[second] / times[first]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pretrain", help="pretraining throughput, memory and MAE's encoder speedup")
    p.add_argument("--models", nargs="+", default=["mae_vit_base_patch16", "convmae_base", "sim_vit_base_patch16"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="default: 64 128 on GPU, 4 on CPU")
    p.add_argument("--speedup-models", nargs="+", default=None,
                   help="default: mae_vit_large_patch16 + mae_vit_huge_patch14 on GPU, mae_vit_base_patch16 on CPU")
    p.add_argument("--speedup-batch", type=int, default=None)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    d = sub.add_parser("det", help="detection backbones at 1024 px: time and memory")
    d.add_argument("--img-size", type=int, default=1024)
    d.add_argument("--batch", type=int, default=1)
    d.add_argument("--iters", type=int, default=None)
    d.add_argument("--warmup", type=int, default=None)
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    args.iters = args.iters or (20 if gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    if args.command == "det":
        det(args)
        return
    args.batch_sizes = args.batch_sizes or ([64, 128] if gpu else [4])
    args.speedup_models = args.speedup_models or (
        ["mae_vit_large_patch16", "mae_vit_huge_patch14"] if gpu else ["mae_vit_base_patch16"])
    args.speedup_batch = args.speedup_batch or (64 if gpu else 4)
    pretrain(args)


if __name__ == "__main__":
    main()
