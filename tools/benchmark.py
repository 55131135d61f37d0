"""Benchmarks (not tests). Subcommands: pretrain, det, data, ratios, attention, gpu.

    python tools/benchmark.py pretrain [--models ...] [--batch-sizes 8 32] [--img-size 224] [--iters 5]
    python tools/benchmark.py det [--img-size 1024] [--batch 1] [--iters 3]

det: forward + backward + AdamW step time and peak memory of the detection backbones (ViT-B with
ViTDet's windows, the same ViT-B with global attention in every block, ConvMAE-B) at 1024x1024.

pretrain: training throughput (images/s of forward + backward + AdamW step) and peak memory per model
and batch size on the present device, and MAE's asymmetric-encoder speedup: the same MAE with the
encoder on the 25% visible tokens versus on all tokens with mask tokens (``encoder_mask_tokens=True``,
the paper's Table 1c ablation "encoder w/ [M]"), as a ratio measured in the same run. The MAE paper
reports 2.8-4.1x for large models (Table 2).

data: the pretraining input pipeline, images/s on one core (one thread, in process) of ours
(``PretrainDataset``: torchvision.io decoding, torch's uint8 bicubic resize, the deterministic
per-sample seeding included) against the official one (torchvision ``ImageFolder`` + the official
transform composition), for MAE's single view and SIM's two views, and the ratio:

    python tools/benchmark.py data --data DIR [--passes 5] [--img-size 224] [--batch 8]

ratios: the ratios of issue 21 from one run, ours against the official code measured alternately in
this process (tools/bench_ratios.py): the ConvMAE-B and ConvMAE-S pretraining steps (forward + backward,
batch 4 at 224) against Alpha-VL/ConvMAE's model (a checkout of that repository), and one ViT-B block
with decomposed relative positions at 1024 px, global and with 14 x 14 windows, forward + backward,
against detectron2's ``Block``; time (median of the rounds, process CPU-seconds) and peak tensor memory
(torch.profiler memory events) as ratios. ``attention`` runs the blocks only:

    python tools/benchmark.py ratios --official-convmae-dir DIR [--rounds 3] [--threads 1]
    python tools/benchmark.py attention [--attention-img-size 1024] [--windows 0 14] [--rounds 3]

gpu: the prepared GPU benchmark that scripts/gpu_bench.sh runs (see there): pretraining images/s and
MFU, detection backbone steps against detectron2's ViT and the official ConvViTDet, ratios; --tiny runs
the same code at tiny sizes on any device:

    python tools/benchmark.py gpu [--tiny] [--budget-s 420] [--official-convmae FILE] [--json FILE]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from bench_gpu import gpu_bench
from bench_ratios import ratios
from bench_timing import measure, time_training

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def interleaved_rates(pipelines: list, n: int, passes: int) -> list[float]:
    """Calls per CPU-second of each ``get(pass, i)`` in ``pipelines``, i in range(n): one warm-up pass, then
    ``passes`` passes over all batches, the pipelines taking turns pass by pass (as a data-loading
    worker runs one pipeline over many images). CPU time of this process (one torch thread: the work
    runs on the calling thread) is what one core delivers, less sensitive than wall time to other
    processes on a shared machine; taking turns spreads what remains over both alike."""
    seconds = [0.0] * len(pipelines)
    for p in range(passes + 1):
        for k, get in enumerate(pipelines):
            t0 = time.process_time()
            for i in range(n):
                get(p, i)
            if p:
                seconds[k] += time.process_time() - t0
    return [passes * n / s for s in seconds]


def data(args: argparse.Namespace) -> None:
    """Input pipeline throughput on one core: ours vs the official composition, MAE and SIM."""
    import torchvision

    from pretrain.data import MAETransform, PretrainDataset, reference_transform
    from pretrain.models.sim.views import SIMTransform

    torch.set_num_threads(1)
    size = args.img_size
    cases = {  # label -> (ours: PretrainDataset, official: ImageFolder)
        "MAE (RandomResizedCrop 0.2-1 + flip)": (
            PretrainDataset(args.data, MAETransform(size, (0.2, 1.0)), mode="mae", grid=(size // 16,) * 2),
            torchvision.datasets.ImageFolder(args.data, reference_transform(size, (0.2, 1.0))),
        ),
        "SIM (two views + colour)": (
            PretrainDataset(args.data, SIMTransform(size, 0.08), mode="sim", grid=(size // 16,) * 2,
                            num_masking_patches=int(round(118 / 196 * (size // 16) ** 2))),
            torchvision.datasets.ImageFolder(args.data, SIMTransform(size, 0.08, reference=True)),
        ),
    }
    n = len(cases[next(iter(cases))][0])
    batches = [range(b, min(b + args.batch, n)) for b in range(0, n, args.batch)]
    collate = torch.utils.data.default_collate
    print(f"input pipeline on 1 core (torch threads 1, in process, images per CPU-second of what a DataLoader "
          f"worker does: read, decode, augment, collate batches of {args.batch}): {n} images from {args.data}, "
          f"{args.passes} passes after 1 warm-up, output {size}x{size}; ours yields uint8 images that "
          "to_model_input normalises on the device, the official yields normalised float32")
    print(f"{'pipeline':38s} {'ours img/s':>11s} {'official img/s':>15s} {'ratio':>7s}")
    for label, (ours, official) in cases.items():
        # ours: each pass is another epoch (other crops); the official draws from the global RNG
        fast, slow = interleaved_rates([
            lambda p, b: collate([ours[(p, i)] for i in batches[b]]),
            lambda p, b: collate([official[i] for i in batches[b]]),
        ], len(batches), args.passes)
        print(f"{label:38s} {fast * n / len(batches):11.1f} {slow * n / len(batches):15.1f} {fast / slow:6.2f}x",
              flush=True)


DET_BACKBONES = {  # label -> (transfer.backbones name, overrides)
    "ViT-B windowed (ViTDet)": ("mae_vit_base", {}),
    "ViT-B all global": ("mae_vit_base", {"window_size": 0}),
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


def add_ratio_args(parser: argparse.ArgumentParser, convmae: bool) -> None:
    parser.add_argument("--attention-img-size", type=int, default=1024)
    parser.add_argument("--windows", nargs="*", type=int, default=[0, 14],
                        help="the blocks' windows (0 = global attention; ViTDet: 14)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.set_defaults(convmae=[], official_convmae_dir=None, batch=4)
    if convmae:
        parser.add_argument("--convmae", nargs="+", default=["convmae_base", "convmae_small"])
        parser.add_argument("--batch", type=int, default=4, help="ConvMAE step batch size")
        parser.add_argument("--official-convmae-dir", default=os.path.join(_ROOT, ".bench", "ConvMAE"),
                            help="a checkout of Alpha-VL/ConvMAE (models_convmae.py, util/, DET/models/convmae.py)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pretrain", help="pretraining throughput, memory and MAE's encoder speedup")
    p.add_argument("--models", nargs="+", default=["mae_vit_base", "convmae_base", "sim_vit_base"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="default: 64 128 on GPU, 4 on CPU")
    p.add_argument("--speedup-models", nargs="+", default=None,
                   help="default: mae_vit_large + mae_vit_huge on GPU, mae_vit_base on CPU")
    p.add_argument("--speedup-batch", type=int, default=None)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    dp = sub.add_parser("data", help="pretraining input pipeline: ours vs the official, images/s per core")
    dp.add_argument("--data", required=True, help="an image folder tree (ImageNet-style), e.g. real photographs")
    dp.add_argument("--img-size", type=int, default=224)
    dp.add_argument("--passes", type=int, default=5, help="timed passes over the folder (after one warm-up pass)")
    dp.add_argument("--batch", type=int, default=8, help="images per collated batch")
    add_ratio_args(sub.add_parser("ratios", help="issue 21's ratios: ConvMAE steps and rel-pos blocks vs official"),
                   convmae=True)
    add_ratio_args(sub.add_parser("attention", help="ViT-B rel-pos blocks at 1024 px: ours vs detectron2"),
                   convmae=False)
    g = sub.add_parser("gpu", help="the prepared GPU benchmark (scripts/gpu_bench.sh)")
    g.add_argument("--tiny", action="store_true", help="tiny models and sizes, any device: checks the code paths")
    g.add_argument("--budget-s", type=float, default=420.0, help="rows not started by then are skipped")
    g.add_argument("--official-convmae", default=os.path.join(_ROOT, ".bench", "official_convmae.py"),
                   help="a local copy of Alpha-VL/ConvMAE DET/models/convmae.py (for its ConvViTDet row)")
    g.add_argument("--json", default=None, help="also write the rows to this JSON file")
    d = sub.add_parser("det", help="detection backbones at 1024 px: time and memory")
    d.add_argument("--img-size", type=int, default=1024)
    d.add_argument("--batch", type=int, default=1)
    d.add_argument("--iters", type=int, default=None)
    d.add_argument("--warmup", type=int, default=None)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    simple = {"data": data, "ratios": ratios, "attention": ratios, "gpu": gpu_bench}
    if args.command in simple:
        simple[args.command](args)
        return
    gpu = torch.cuda.is_available()
    args.iters = args.iters or (20 if gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    if args.command == "det":
        det(args)
        return
    args.batch_sizes = args.batch_sizes or ([64, 128] if gpu else [4])
    args.speedup_models = args.speedup_models or (
        ["mae_vit_large", "mae_vit_huge"] if gpu else ["mae_vit_base"])
    args.speedup_batch = args.speedup_batch or (64 if gpu else 4)
    pretrain(args)


if __name__ == "__main__":
    main()
