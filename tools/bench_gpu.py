"""The prepared GPU benchmark of scripts/gpu_bench.sh (not a tool; ``tools/benchmark.py gpu`` runs it):
pretraining images/s and MFU, detection backbone steps against detectron2's ViT and the official
ConvViTDet, ratios; ``--tiny`` runs the same code at tiny sizes on any device."""
from __future__ import annotations

import argparse
import os
import time

import torch

from bench_timing import make_step, measure
from pretrain.models import build_model


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

    from transfer.backbones.rel_pos import folded_attention
    from transfer.backbones.rel_pos_attention import decomposed_rel_pos_attention

    g = size["det_img"] // 16
    q, k, v = (torch.randn(1, 12, g * g, 64, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
    rh, rw = (torch.randn(2 * g - 1, 64, device=device, dtype=dtype, requires_grad=True) for _ in range(2))
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        for i in range(2):  # the second call is timed
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            out = decomposed_rel_pos_attention(q, k, v, rh, rw, (g, g), (g, g), kernel=folded_attention)
            out.float().sum().backward()
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


