"""Parameters and FLOPs of registered pretraining models (MAE, ConvMAE, SIM).

    python tools/model_info.py mae_vit_base convmae_base sim_vit_base [--img-size 224]

One forward of one image, counted by torch's ``FlopCounterMode`` (the FLOP counter tools/benchmark.py
uses too), reported as multiply-adds (1 multiply-add = 1 flop, the papers' convention): matmuls,
convolutions and attention (``scaled_dot_product_attention``); normalisations and other elementwise
ops are not counted (fvcore, used before, counted them: MAE-B 9.80 there, 9.42 here). "encoder" is
the share of the modules holding ``encoder_state_dict()`` keys in that same forward, i.e. the encoder
on the visible tokens (ConvMAE's stages 1-2 run at the kept positions only). MAE/ConvMAE: mask ratio ``--mask-ratio``
with fixed noise. SIM: block-wise mask of round(0.6 L) patches (118 of 196 at 224/16, the official
recipe), identical crops; the full forward includes the momentum encoder on the whole view 2.
"""
from __future__ import annotations

import argparse
import random
from typing import Callable

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from pretrain.encoders import encoder
from pretrain.models import build_model
from pretrain.models.sim.geometry import relative_crop
from pretrain.models.sim.masking import block_wise_mask


def example_call(model: nn.Module, family: str, img_size: int, mask_ratio: float) -> Callable[[], object]:
    """One forward of one image through the model; ``family`` from the encoder table (pretrain/encoders.py)."""
    g = torch.Generator().manual_seed(0)
    imgs = torch.randn(1, 3, img_size, img_size, generator=g)
    grid = (img_size // model.patch_size, img_size // model.patch_size)  # ConvMAE: patch_size is the stage-3 total
    length = grid[0] * grid[1]
    if family == "sim":
        num_masked = round(0.6 * length)
        mask = block_wise_mask(grid, num_masked, rng=random.Random(0)).reshape(1, -1)
        box = torch.tensor([[0.0, 0.0, img_size, img_size]])
        rel = relative_crop(box, box)
        return lambda: model(imgs, imgs.clone(), rel, 0.996, False, mask=mask, num_masked=num_masked)
    noise = torch.rand(1, length, generator=g)
    return lambda: model(imgs, mask_ratio=mask_ratio, noise=noise)


def encoder_modules(model: nn.Module) -> list[str]:
    keys = model.encoder_state_dict()
    return sorted({k.split(".")[0] for k in keys if "." in k})


def forward_macs(model: nn.Module, call: Callable[[], object]) -> dict[str, float]:
    """Multiply-adds of ``call()`` by module, from torch's FlopCounterMode (2 FLOPs = 1 multiply-add):
    "total" and each top-level child's name."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        call()
    totals = {key: sum(ops.values()) / 2 for key, ops in counter.get_flop_counts().items()}
    prefix = type(model).__name__
    by_child = {}
    for name, child in model.named_children():  # a ModuleList is never called: sum its items
        keys = [f"{prefix}.{name}.{i}" for i in range(len(child))] if isinstance(child, nn.ModuleList) \
            else [f"{prefix}.{name}"]
        by_child[name] = sum(totals.get(k, 0.0) for k in keys)
    return {"total": counter.get_total_flops() / 2, **by_child}


def info(name: str, img_size: int, mask_ratio: float) -> None:
    torch.manual_seed(0)
    model = build_model(name).eval()
    enc_keys = set(model.encoder_state_dict())
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    enc_params = sum(p.numel() for n, p in model.named_parameters() if n in enc_keys)
    macs = forward_macs(model, example_call(model, encoder(name).family, img_size, mask_ratio))
    enc_macs = sum(macs.get(m, 0) for m in encoder_modules(model))
    print(
        f"{name}: params total {total / 1e6:.2f} M (trainable {trainable / 1e6:.2f} M), "
        f"encoder {enc_params / 1e6:.2f} M | GFLOPs at {img_size}: full forward {macs['total'] / 1e9:.3f}, "
        f"encoder on visible tokens {enc_macs / 1e9:.3f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", help="registered model names (pretrain.models.list_models())")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    args = parser.parse_args()
    for name in args.names:
        info(name, args.img_size, args.mask_ratio)


if __name__ == "__main__":
    main()
