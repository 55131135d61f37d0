"""SIM's masks: BEiT-style block-wise masks of view 1 (drawn per sample in the data loader) and the
indices of the visible patches they leave."""
from __future__ import annotations

import math
import random

import torch


def visible_indices(mask: torch.Tensor, num_masked: int) -> torch.Tensor:
    """Indices of the unmasked tokens in raster order: mask [N, L] (1 = masked, ``num_masked`` ones
    per row) -> ids_keep [N, L - num_masked]; equals boolean indexing ``x[~mask]`` without a
    data-dependent shape."""
    ids = torch.argsort(mask.to(torch.int8), dim=1, stable=True)  # zeros first, in index order
    return ids[:, : mask.shape[1] - num_masked]


def block_wise_mask(
    grid_size: int | tuple[int, int],
    num_masking_patches: int,
    min_num_patches: int = 16,
    max_num_patches: int | None = None,
    min_aspect: float = 0.3,
    max_aspect: float | None = None,
    rng: random.Random | None = None,
) -> torch.Tensor:
    """BEiT-style block-wise mask with exactly ``num_masking_patches`` ones -> bool [gh, gw].

    Rectangles of random area in [min_num_patches, remaining] and log-uniform aspect ratio are
    added while each adds at least one new patch; if that stops short of the count, random
    unmasked patches fill the rest (the official ``fixed_num_masking_patches=True``). Defaults are
    SIM's (OpenGVLab/Siamese-Image-Modeling util/datasets.py, util/masking_generator.py): 118 of
    14x14 patches for ViT-B/16 at 224. Runs per sample in the data loader (CPU).
    """
    gh, gw = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    if not 0 <= num_masking_patches <= gh * gw:
        raise ValueError(f"num_masking_patches must be in [0, {gh * gw}], got {num_masking_patches}")
    rng = rng or random.Random()
    max_block = num_masking_patches if max_num_patches is None else max_num_patches
    log_aspect = (math.log(min_aspect), math.log(max_aspect or 1 / min_aspect))
    mask = torch.zeros(gh, gw, dtype=torch.bool)
    count = 0
    while count < num_masking_patches:
        budget = min(num_masking_patches - count, max_block)
        added = 0
        for _ in range(10):  # up to 10 attempts at one new rectangle
            area = rng.uniform(min_num_patches, budget)
            aspect = math.exp(rng.uniform(*log_aspect))
            h, w = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if w < gw and h < gh:
                top, left = rng.randint(0, gh - h), rng.randint(0, gw - w)
                block = mask[top : top + h, left : left + w]
                new = h * w - int(block.sum())
                if 0 < new <= budget:
                    block.fill_(True)
                    added = new
            if added:
                break
        if not added:
            break
        count += added
    if count < num_masking_patches:  # top up with random free patches
        free = (~mask).flatten().nonzero().flatten().tolist()
        rng.shuffle(free)
        mask.view(-1)[free[: num_masking_patches - count]] = True
    return mask
