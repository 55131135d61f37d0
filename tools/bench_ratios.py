"""The ratios of issue 21 from one run (not a tool; imported by tools/benchmark.py): ours against the
official code, each pair measured alternately in this process (``bench_timing``).

- ConvMAE pretraining step (forward + backward, batch 4 at 224 by default) for each size asked:
  ``pretrain.models`` against Alpha-VL/ConvMAE ``models_convmae.MaskedAutoencoderConvViT`` built with
  the same sizes and loaded with the same weights (its forward must give our loss for the same mask).
  The official repository lacks the ``vision_transformer`` module that file imports; its
  ``PatchEmbed``/``Block``/``CBlock`` are taken from the repository's ``DET/models/convmae.py`` (the
  same classes; importing it needs detectron2 and einops). 224 px only (the official code hard-wires
  14 x 14); pass a checkout with ``--official-convmae-dir``.
- One ViT-B block with decomposed relative positions at ``--attention-img-size`` (1024: 64 x 64
  tokens), forward + backward: global attention, and 14 x 14 windows, ours (``WindowBlock``) against
  detectron2's ``Block``.
"""
from __future__ import annotations

import importlib.util
import os
import statistics
import sys
from functools import partial

import numpy as np
import torch
import torch.nn as nn

from bench_timing import alternating_seconds, peak_gib
from pretrain.models import build_model


# ------------------------------------------------------------------------------------------------
# ConvMAE pretraining: ours vs the official model
# ------------------------------------------------------------------------------------------------
def _load_module(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_convmae(checkout: str, ours: nn.Module) -> nn.Module:
    """Alpha-VL/ConvMAE's pretraining model with ``ours``' sizes and weights (224 px only)."""
    sys.modules["vision_transformer"] = _load_module("official_det_convmae", os.path.join(checkout, "DET", "models",
                                                                                         "convmae.py"))
    sys.path.insert(0, checkout)  # models_convmae imports util.pos_embed
    try:
        official = _load_module("official_models_convmae", os.path.join(checkout, "models_convmae.py"))
    finally:
        sys.path.remove(checkout)
    c = ours.embed_dims
    stages = (ours.blocks1, ours.blocks2, ours.blocks3)
    np.float = float  # the official pos_embed.py uses this alias, removed in numpy 1.24
    model = official.MaskedAutoencoderConvViT(
        img_size=[224, 56, 28], patch_size=list(ours.patch_sizes), embed_dim=list(c),
        depth=[len(b) for b in stages], num_heads=ours.blocks3[0].attn.num_heads,
        decoder_embed_dim=ours.decoder_embed.out_features, decoder_depth=len(ours.decoder_blocks),
        decoder_num_heads=ours.decoder_blocks[0].attn.num_heads,
        mlp_ratio=[b[0].mlp.fc1.weight.shape[0] / ci for b, ci in zip(stages, c)],
        norm_layer=partial(nn.LayerNorm, eps=1e-6))
    del np.float
    model.load_state_dict(ours.state_dict(), strict=True)
    return model


def convmae_pair(name: str, checkout: str, batch: int) -> tuple[dict, float]:
    """-> ({"ours": step, "official": step}, max |prediction difference| for one mask); step = forward +
    backward."""
    torch.manual_seed(0)
    ours = build_model(name, img_size=224).train()
    official = official_convmae(checkout, ours).train()
    x = torch.randn(batch, 3, 224, 224)
    preds = []
    for model in (ours, official):  # the same seed draws the same mask (both draw torch.rand(N, L) first)
        torch.manual_seed(1)
        with torch.no_grad():
            preds.append(model(x, mask_ratio=0.75)[1])

    def step(model: nn.Module) -> None:
        model.zero_grad(set_to_none=True)
        model(x, mask_ratio=0.75)[0].backward()

    return {"ours": partial(step, ours), "official": partial(step, official)}, (preds[0] - preds[1]).abs().max().item()


# ------------------------------------------------------------------------------------------------
# Relative-position attention blocks: ours vs detectron2
# ------------------------------------------------------------------------------------------------
def attention_block(impl: str, grid: int, window: int) -> nn.Module:
    """A ViT-B block (768 wide, 12 heads, decomposed rel-pos; ``window`` 0 = global) for a grid x grid
    token map: ours (``WindowBlock``) or detectron2's ``Block``."""
    norm = partial(nn.LayerNorm, eps=1e-6)
    size = (window, window) if window else (grid, grid)
    if impl == "detectron2":
        from detectron2.modeling.backbone.vit import Block

        return Block(768, 12, norm_layer=norm, window_size=window, use_rel_pos=True, rel_pos_zero_init=False,
                     input_size=size).train()
    from transfer.backbones.vit_block import WindowBlock

    return WindowBlock(768, 12, norm_layer=norm, window_size=window, rel_pos_size=size, rel_pos_zero_init=False).train()


def attention_pair(img_size: int, window: int) -> dict:
    """{"ours": step, "detectron2": step}: forward + backward of one block on a 1 x grid x grid x 768 map."""
    grid = img_size // 16
    x = torch.randn(1, grid, grid, 768, requires_grad=True)
    ours, theirs = attention_block("ours", grid, window), attention_block("detectron2", grid, window)
    theirs.load_state_dict(ours.state_dict())

    def step(block: nn.Module) -> None:
        block.zero_grad(set_to_none=True)
        x.grad = None
        block(x).mean().backward()

    return {"ours": partial(step, ours), "detectron2": partial(step, theirs)}


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
def compare(label: str, pair: dict, rounds: int, warmup: int) -> str:
    """Alternating times and the peaks of one pair -> the report line (ours / theirs)."""
    cpu = torch.device("cpu")
    times = alternating_seconds(pair, rounds, warmup, cpu)
    peaks = {name: peak_gib(fn, cpu) for name, fn in pair.items()}
    (a, b) = pair
    ta, tb = statistics.median(times[a]), statistics.median(times[b])
    per_round = ", ".join(f"{x / y:.2f}" for x, y in zip(times[a], times[b]))
    return (f"{label}: {a} {ta:.3f} s, {b} {tb:.3f} s (CPU-s per call, median of {rounds} alternating rounds) "
            f"-> time {a} / {b} {ta / tb:.2f}x (rounds: {per_round}), speed {tb / ta:.2f}x; "
            f"peak memory {peaks[a] / peaks[b]:.2f}x (+{peaks[a]:.3f} vs +{peaks[b]:.3f} GiB)")


def ratios(args) -> None:
    """Print every ratio: the ConvMAE steps (when an official checkout is there) and the attention blocks."""
    torch.set_num_threads(args.threads)
    print(f"CPU, {torch.get_num_threads()} thread(s), fp32; times in process CPU-seconds; peak memory = tensor "
          "memory above the start of one call (torch.profiler memory events)", flush=True)
    checkout = args.official_convmae_dir
    if args.convmae and not os.path.isfile(os.path.join(checkout, "models_convmae.py")):
        print(f"ConvMAE: no Alpha-VL/ConvMAE checkout at {checkout!r} (git clone https://github.com/Alpha-VL/ConvMAE "
              "and pass --official-convmae-dir): its ratios are left out", flush=True)
    elif args.convmae:
        for name in args.convmae:
            pair, diff = convmae_pair(name, checkout, args.batch)
            label = f"{name} pretraining step (batch {args.batch}, 224, fwd+bwd; predictions agree to {diff:.1e})"
            print(compare(label, pair, args.rounds, args.warmup), flush=True)
    for window in args.windows:
        kind = f"{window}x{window} windows" if window else "global"
        label = f"ViT-B block, {kind}, rel-pos, {args.attention_img_size} px, fwd+bwd"
        print(compare(label, attention_pair(args.attention_img_size, window), args.rounds, args.warmup), flush=True)
