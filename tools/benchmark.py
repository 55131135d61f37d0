"""Benchmarks (not tests). Subcommands: pretrain, det, data, attention, gpu.

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

attention: one ViT-B block with global attention and decomposed relative positions at 1024 px
(64 x 64 = 4096 tokens), forward + backward: ours (the terms folded into SDPA's q.k) against
detectron2's ``Block`` (a [B, heads, L, L] bias), time and peak memory as ratios. Each case runs in
a fresh process; its peak is the rise of the process's max RSS (CPU) or CUDA's peak allocation
over the state before the first forward (model and input built):

    python tools/benchmark.py attention [--img-size 1024] [--iters 1] [--warmup 1] [--threads 1]

gpu: the prepared GPU benchmark that scripts/gpu_bench.sh runs (see there): pretraining images/s and
MFU, detection backbone steps against detectron2's ViT and the official ConvViTDet, ratios; --tiny runs
the same code at tiny sizes on any device:

    python tools/benchmark.py gpu [--tiny] [--budget-s 420] [--official-convmae FILE] [--json FILE]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from contextlib import nullcontext

import torch

from pretrain.models import build_model
from pretrain.models.sim.geometry import relative_crop
from pretrain.models.sim.masking import block_wise_mask

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def attention_block(impl: str, grid: int, device: torch.device) -> torch.nn.Module:
    """A ViT-B block (768 wide, 12 heads) with global attention and decomposed relative positions
    sized for a grid x grid tokens: ours (``WindowBlock``) or detectron2's ``Block``."""
    from functools import partial

    norm = partial(torch.nn.LayerNorm, eps=1e-6)
    if impl == "detectron2":
        from detectron2.modeling.backbone.vit import Block

        block = Block(768, 12, norm_layer=norm, use_rel_pos=True, rel_pos_zero_init=False, input_size=(grid, grid))
    else:
        from transfer.backbones.vit_block import WindowBlock

        block = WindowBlock(768, 12, norm_layer=norm, rel_pos_size=(grid, grid), rel_pos_zero_init=False)
    return block.to(device).train()


def attention_case(impl: str, img_size: int, iters: int, warmup: int, device: torch.device) -> dict:
    """Forward + backward of one block in this process -> {seconds, peak_gib} (peak above the
    state after building the block and its input)."""
    grid = img_size // 16
    block = attention_block(impl, grid, device)
    x = torch.randn(1, grid, grid, 768, device=device, requires_grad=True)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    step = lambda: block(x).float().mean()  # noqa: E731
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    opt = torch.optim.SGD(block.parameters(), lr=0.0)  # measure() steps an optimizer; lr 0 keeps weights
    seconds, peak = measure(step, opt, iters, warmup, device, dtype)
    if device.type == "cuda":
        return {"seconds": seconds, "peak_gib": peak - base / 2**30}
    return {"seconds": seconds, "peak_gib": peak - base / 2**20}


def attention(args: argparse.Namespace) -> None:
    """Ours vs detectron2, each in a fresh subprocess; prints both and the ratios."""
    import json
    import subprocess

    if args.case:  # the worker: one case, one JSON line
        torch.set_num_threads(args.threads)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        print(json.dumps(attention_case(args.case, args.img_size, args.iters, args.warmup, device)))
        return
    gpu = torch.cuda.is_available()
    where = torch.cuda.get_device_name() if gpu else f"CPU ({args.threads} thread(s))"
    grid = args.img_size // 16
    print(f"one ViT-B global block with decomposed rel-pos, {grid}x{grid} = {grid * grid} tokens, forward + "
          f"backward | {where} | {'bf16' if gpu else 'fp32'} | {args.iters} timed after {args.warmup} warm-up")
    results = {}
    for impl in ("ours", "detectron2"):
        cmd = [sys.executable, os.path.abspath(__file__), "attention", "--case", impl, "--img-size",
               str(args.img_size), "--iters", str(args.iters), "--warmup", str(args.warmup),
               "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"the {impl} case failed:\n{out.stderr[-3000:]}")
        results[impl] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[impl]
        print(f"{impl:12s} {r['seconds']:8.3f} s/iter   peak +{r['peak_gib']:.2f} GiB", flush=True)
    ours, theirs = results["ours"], results["detectron2"]
    print(f"ours / detectron2: time {ours['seconds'] / theirs['seconds']:.2f}x, "
          f"peak memory {ours['peak_gib'] / theirs['peak_gib']:.2f}x")


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


# ------------------------------------------------------------------------------------------------
# gpu: the prepared benchmark of scripts/gpu_bench.sh
# ------------------------------------------------------------------------------------------------
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16 tensor-core peaks (SXM)

GPU_SIZES = {  # full: the real models on one H100; tiny: the same code paths in seconds on a CPU
    "full": dict(pre_img=224, pre_batch=128, det_img=1024, det_batch=1, iters=10, warmup=3,
                 mae="mae_vit_base", convmae="convmae_base", sim="sim_vit_base",
                 vit="mae_vit_base", convdet="convmae_base", official_ok=True),
    "tiny": dict(pre_img=64, pre_batch=2, det_img=64, det_batch=1, iters=1, warmup=1,
                 mae="mae_vit_tiny", convmae="convmae_tiny", sim="sim_vit_tiny",
                 vit="mae_vit_tiny", convdet="convmae_tiny", official_ok=False),  # official: 1024 px only
}


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def step_flops(step) -> float:
    """FLOPs of one forward + backward (torch's FlopCounterMode: matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step().backward()
    return float(counter.get_total_flops())


def free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def pretrain_row(label: str, name: str, size: dict, device: torch.device, dtype: torch.dtype,
                 compiled: bool) -> dict:
    """Images/s, TFLOP/s and MFU of one pretraining model's training step."""
    model = build_model(name, img_size=size["pre_img"]).to(device).train()
    batch = size["pre_batch"]
    flops = step_flops(make_step(model, name, batch, size["pre_img"], device))
    model.zero_grad(set_to_none=True)
    runner = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    t0 = time.perf_counter()
    seconds, peak = measure(make_step(runner, name, batch, size["pre_img"], device), opt, size["iters"],
                            size["warmup"], device, dtype)
    row = {"case": label, "batch": batch, "img/s": batch / seconds, "TFLOP/s": flops / seconds / 1e12,
           "peak GiB": peak, "warm-up+timed s": time.perf_counter() - t0}
    peak_t = peak_tflops(device)
    row["MFU"] = row["TFLOP/s"] / peak_t if peak_t else None
    del model, runner, opt
    free(device)
    return row


def detectron2_vit_like(ours: torch.nn.Module, img_size: int) -> torch.nn.Module:
    """detectron2's ViT with our ViTDet backbone's sizes (ViTDet's settings)."""
    from functools import partial

    from detectron2.modeling.backbone.vit import ViT

    windows = [blk.window_size for blk in ours.blocks]
    return ViT(img_size=img_size, embed_dim=ours.embed_dim, depth=ours.depth, num_heads=ours.blocks[0].attn.num_heads,
               drop_path_rate=0.1, window_size=max(windows), norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
               window_block_indexes=[i for i, w in enumerate(windows) if w], residual_block_indexes=[],
               use_rel_pos=True, out_feature="last_feat")


def official_convvitdet(path: str) -> torch.nn.Module:
    """The official ConvViTDet (Alpha-VL/ConvMAE DET/models/convmae.py, a local copy; 1024 px only);
    its forward takes an object with ``.tensor``, so it is wrapped."""
    import importlib.util
    import types

    spec = importlib.util.spec_from_file_location("official_convmae", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.ConvViTDet(window_size=16, drop_path_rate=0.1)

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(types.SimpleNamespace(tensor=x))

    return Wrapped()


def det_row(label: str, build, size: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """Training step (forward + backward + AdamW) time and peak memory of one detection backbone."""
    free(device)
    model = build().to(device).train()
    x = torch.randn(size["det_batch"], 3, size["det_img"], size["det_img"], device=device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    step = lambda: sum(f.float().mean() for f in model(x).values())  # noqa: E731
    seconds, peak = measure(step, opt, size["iters"], size["warmup"], device, dtype)
    del model, opt
    free(device)
    return {"case": label, "batch": size["det_batch"], "step ms": seconds * 1e3, "peak GiB": peak}


def det_cases(size: dict, official: str | None) -> list[tuple[str, object]]:
    from transfer.backbones import build_backbone

    img = size["det_img"]
    ours_vit = lambda: build_backbone(size["vit"], img_size=img)  # noqa: E731
    cases = [("ViTDet-B ours", ours_vit),
             ("ViTDet-B detectron2 ViT", lambda: detectron2_vit_like(ours_vit(), img)),
             ("ConvMAE-B ours", lambda: build_backbone(size["convdet"], img_size=img))]
    if official and size["official_ok"]:
        cases.append(("ConvMAE-B official ConvViTDet", lambda: official_convvitdet(official)))
    return cases


def flash_row(size: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """Whether our folded rel-pos attention (a ViT-B global block's shapes) runs forward and backward
    with only SDPA's flash backend enabled, and its time there."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from transfer.backbones.rel_pos import folded_rel_pos_attention

    g = size["det_img"] // 16
    q, k, v = (torch.randn(1, 12, g * g, 64, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
    rh, rw = (torch.randn(2 * g - 1, 64, device=device, dtype=dtype, requires_grad=True) for _ in range(2))
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        for i in range(2):  # the second call is timed
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            folded_rel_pos_attention(q, k, v, rh, rw, (g, g), (g, g)).float().sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    return {"case": "folded rel-pos attention, flash only", "tokens": g * g, "fwd+bwd ms": seconds * 1e3}


def run_rows(jobs: list, budget_s: float, t_start: float) -> list[dict]:
    """Run ``(label, fn)`` jobs in order; a job that fails (OOM, missing package) or finds the time
    budget spent becomes a row with its reason, and the rest still run."""
    rows = []
    for label, fn in jobs:
        if time.perf_counter() - t_start > budget_s:
            rows.append({"case": label, "skipped": f"time budget of {budget_s:.0f} s spent"})
            continue
        try:
            rows.append(fn())
        except Exception as exc:  # noqa: BLE001 - a benchmark row must not stop the others
            rows.append({"case": label, "skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
        print_row(rows[-1])
    return rows


def print_row(row: dict) -> None:
    cells = [f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
             for k, v in row.items() if k != "case" and v is not None]
    print(f"  {row['case']:34s} " + " | ".join(cells), flush=True)


def ratio_lines(rows: list[dict]) -> list[str]:
    """Ours / theirs for each pair measured in this run."""
    by = {r["case"]: r for r in rows if "skipped" not in r}
    pairs = [("ViTDet-B ours", "ViTDet-B detectron2 ViT"), ("ConvMAE-B ours", "ConvMAE-B official ConvViTDet")]
    out = []
    for ours, theirs in pairs:
        if ours in by and theirs in by:
            a, b = by[ours], by[theirs]
            out.append(f"{ours} / {theirs}: speed {b['step ms'] / a['step ms']:.2f}x (step time "
                       f"{a['step ms'] / b['step ms']:.2f}x), peak memory {a['peak GiB'] / b['peak GiB']:.2f}x")
    if "MAE-B" in by and "MAE-B compiled" in by:
        out.append(f"MAE-B compiled / eager: {by['MAE-B compiled']['img/s'] / by['MAE-B']['img/s']:.2f}x images/s")
    return out


def gpu_bench(args: argparse.Namespace) -> None:
    """MAE-B (eager, compiled), ConvMAE-B, SIM-B pretraining throughput and MFU; ViTDet-B / ConvMAE-B
    detection backbone steps against detectron2's ViT / the official ConvViTDet; ratios."""
    import json

    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        print("no CUDA device: skipping the GPU benchmark (--tiny runs its code paths at tiny sizes on the CPU)")
        return
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    size = GPU_SIZES["tiny" if args.tiny else "full"]
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    t_start = time.perf_counter()
    where = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"device {where} | {dtype} | torch {torch.__version__} | sizes {'tiny' if args.tiny else 'full'} | "
          f"peak {peak_tflops(device) or 'unknown'} TFLOP/s bf16 dense | budget {args.budget_s:.0f} s")
    official = args.official_convmae if args.official_convmae and os.path.isfile(args.official_convmae) else None
    if not official:
        print(f"  (official ConvViTDet: no source file at {args.official_convmae!r}; its row is left out)")
    pre = [("MAE-B", size["mae"], False), ("MAE-B compiled", size["mae"], True),
           ("ConvMAE-B", size["convmae"], False), ("SIM-B", size["sim"], False)]
    jobs = [(label, (lambda lb=label, n=name, c=comp: pretrain_row(lb, n, size, device, dtype, c)))
            for label, name, comp in pre if not (comp and args.tiny)]
    jobs += [(label, (lambda lb=label, b=build: det_row(lb, b, size, device, dtype)))
             for label, build in det_cases(size, official)]
    jobs.append(("folded rel-pos attention, flash only", lambda: flash_row(size, device, dtype)))
    print("pretraining (img/s, MFU) and detection backbones (step, peak):")
    rows = run_rows(jobs, args.budget_s, t_start)
    lines = ratio_lines(rows)
    print("\n".join(lines))
    print(f"total {time.perf_counter() - t_start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": where, "rows": rows, "ratios": lines}, f, indent=1)


def main() -> None:
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
    a = sub.add_parser("attention", help="one ViT-B global rel-pos block at 1024 px: ours vs detectron2")
    a.add_argument("--img-size", type=int, default=1024)
    a.add_argument("--iters", type=int, default=1)
    a.add_argument("--warmup", type=int, default=1)
    a.add_argument("--threads", type=int, default=1, help="CPU threads per case")
    a.add_argument("--case", choices=["ours", "detectron2"], help=argparse.SUPPRESS)
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
    args = parser.parse_args()
    if args.command == "data":
        data(args)
        return
    if args.command == "attention":
        attention(args)
        return
    if args.command == "gpu":
        gpu_bench(args)
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
