"""Parameters and FLOPs of registered pretraining models (MAE, ConvMAE, SIM).

    python tools/model_info.py mae_vit_base convmae_base sim_vit_base [--img-size 224]

One forward of one image, traced by fvcore's FlopCountAnalysis (1 multiply-add = 1 flop, the
papers' convention), attention included (``aten::scaled_dot_product_attention``, which fvcore does
not count by itself). "encoder" is the share of the modules holding ``encoder_state_dict()`` keys in
that same forward, i.e. the encoder on the visible tokens. MAE/ConvMAE: mask ratio ``--mask-ratio``
with fixed noise. SIM: block-wise mask of round(0.6 L) patches (118 of 196 at 224/16, the official
recipe), identical crops; the full forward includes the momentum encoder on the whole view 2.
"""
from __future__ import annotations

import argparse
import random

import torch
import torch.nn as nn

from pretrain.encoders import encoder
from pretrain.models import build_model
from pretrain.models.sim.geometry import RelativeCrop, relative_crop
from pretrain.models.sim.masking import block_wise_mask


class _Call(nn.Module):
    """Tensor-only wrapper so fvcore's tracer sees plain tensor inputs and one tensor output."""

    def __init__(self, model: nn.Module, **kwargs):
        super().__init__()
        self.model, self.kwargs = model, kwargs

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        if "num_masked" in self.kwargs:  # SIM: (x1, x2, mask, *relative crop)
            x1, x2, mask, *rel = tensors
            out = self.model(x1, x2, RelativeCrop(*rel), 0.996, False, mask=mask, **self.kwargs)
        else:  # MAE / ConvMAE: (imgs, noise)
            imgs, noise = tensors
            out = self.model(imgs, noise=noise, **self.kwargs)
        return out[0]


def example_call(model: nn.Module, family: str, img_size: int,
                 mask_ratio: float) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The model wrapped for tracing and its inputs; ``family`` from the encoder table (pretrain/encoders.py)."""
    g = torch.Generator().manual_seed(0)
    imgs = torch.randn(1, 3, img_size, img_size, generator=g)
    grid = (img_size // model.patch_size, img_size // model.patch_size)  # ConvMAE: patch_size is the stage-3 total
    length = grid[0] * grid[1]
    if family == "sim":
        num_masked = round(0.6 * length)
        mask = block_wise_mask(grid, num_masked, rng=random.Random(0)).reshape(1, -1)
        box = torch.tensor([[0.0, 0.0, img_size, img_size]])
        return _Call(model, num_masked=num_masked), (imgs, imgs.clone(), mask, *relative_crop(box, box))
    return _Call(model, mask_ratio=mask_ratio), (imgs, torch.rand(1, length, generator=g))


def sdpa_flop_jit(inputs, outputs) -> int:
    """q [B, H, Lq, D] k [B, H, Lk, D] v [B, H, Lk, Dv]: q k^T plus attn v multiply-adds."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    *batch, lq, d = q
    n = 1
    for b in batch:
        n *= b
    return n * lq * k[-2] * (d + v[-1])


def encoder_modules(model: nn.Module) -> list[str]:
    keys = model.encoder_state_dict()
    return sorted({k.split(".")[0] for k in keys if "." in k})


def info(name: str, img_size: int, mask_ratio: float) -> None:
    from fvcore.nn import FlopCountAnalysis

    torch.manual_seed(0)
    model = build_model(name).eval()
    enc_keys = set(model.encoder_state_dict())
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    enc_params = sum(p.numel() for n, p in model.named_parameters() if n in enc_keys)
    wrapper, inputs = example_call(model, encoder(name).family, img_size, mask_ratio)
    flops = FlopCountAnalysis(wrapper, inputs).set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_jit)
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        by_module = flops.by_module()
    enc_flops = sum(by_module.get(f"model.{m}", 0) for m in encoder_modules(model))
    print(
        f"{name}: params total {total / 1e6:.2f} M (trainable {trainable / 1e6:.2f} M), "
        f"encoder {enc_params / 1e6:.2f} M | GFLOPs at {img_size}: full forward {flops.total() / 1e9:.3f}, "
        f"encoder on visible tokens {enc_flops / 1e9:.3f}",
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
