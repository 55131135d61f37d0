"""Shared helpers of the pretraining tests: toy image folders and the tiny configs."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from pretrain.toy_data import render_scene

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs", "pretrain")


def write_images(root: str, num_images: int = 8, size: int = 64, seed: int = 0) -> str:
    """``num_images`` toy scenes as PNGs in an ImageNet-style tree root/class_k/img_i.png -> root."""
    rng = np.random.default_rng(seed)
    for i in range(num_images):
        folder = os.path.join(root, f"class_{i % 2}")
        os.makedirs(folder, exist_ok=True)
        image, _ = render_scene(rng, size)
        Image.fromarray(image).save(os.path.join(folder, f"img_{i:04d}.png"))
    return root


def config_path(name: str) -> str:
    return os.path.join(CONFIGS, name)
