"""Generated toy scenes: filled shapes (square, disk, triangle) on a noisy background.

One generator serves the unlabeled pretraining images, the COCO-format detection set and the
ADE-format segmentation set (tools/make_toy_data.py), so every toy run sees the same kind of image.
The category of an object is its shape; each category also has its own colour family (a base colour
with random jitter), so a tiny detector trained for a few minutes on CPU can tell them apart.
"""
from __future__ import annotations

import numpy as np

CATEGORIES = ("square", "disk", "triangle")
BASE_COLOURS = np.array([[220.0, 60.0, 60.0], [60.0, 200.0, 60.0], [70.0, 90.0, 230.0]])  # per category


def _shape_mask(kind: str, size: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == "square":
        return (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
    if kind == "disk":
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    if kind == "triangle":  # apex up, base at cy + r
        inside_y = (yy >= cy - r) & (yy <= cy + r)
        half_width = (yy - (cy - r)) / 2.0
        return inside_y & (np.abs(xx - cx) <= half_width)
    raise ValueError(f"unknown shape {kind!r}; known: {CATEGORIES}")


def render_scene(
    rng: np.random.Generator, size: int, max_objects: int = 4, min_radius_frac: float = 0.08,
    max_radius_frac: float = 0.2,
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Returns an RGB uint8 image [size, size, 3] and its objects as (category index, visible mask).

    Later shapes occlude earlier ones; objects left with fewer than 20 visible pixels are dropped.
    """
    image = rng.normal(100.0, 20.0, size=(size, size, 3)) + rng.uniform(-40, 40, size=3)
    occupancy = np.full((size, size), -1, dtype=np.int64)
    kinds = []
    for k in range(int(rng.integers(1, max_objects + 1))):
        cat = int(rng.integers(len(CATEGORIES)))
        r = rng.uniform(min_radius_frac, max_radius_frac) * size
        cy, cx = rng.uniform(r, size - r, size=2)
        mask = _shape_mask(CATEGORIES[cat], size, cy, cx, r)
        colour = BASE_COLOURS[cat] + rng.uniform(-35, 35, size=3)
        image[mask] = colour + rng.normal(0, 8.0, size=(int(mask.sum()), 3))
        occupancy[mask] = k
        kinds.append(cat)
    objects = []
    for k, cat in enumerate(kinds):
        visible = occupancy == k
        if visible.sum() >= 20:
            objects.append((cat, visible))
    return np.clip(image, 0, 255).astype(np.uint8), objects
