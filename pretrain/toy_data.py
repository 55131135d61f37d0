"""Generated toy scenes: filled shapes (square, disk, triangle) on a noisy background.

One generator serves the unlabeled pretraining images, the COCO-format detection set and the
ADE-format segmentation set (tools/make_toy_data.py), so every toy run sees the same kind of image.
The category of an object is its shape; each category also has its own colour family (a base colour
with random jitter), so a tiny detector trained for a few minutes on CPU can tell them apart.

The labelled classification set (``write_classification_set``) has one class per (shape, colour
family) pair, in ImageNet's folder layout.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

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


def _paint_shape(rng: np.random.Generator, image: np.ndarray, kind: str, base_colour: np.ndarray,
                 radius_frac: tuple[float, float]) -> np.ndarray:
    """Paint one ``kind`` shape of a jittered ``base_colour`` into ``image`` [size, size, 3] (float, in
    place) at a random place and radius -> its mask [size, size]."""
    size = image.shape[0]
    r = rng.uniform(*radius_frac) * size
    cy, cx = rng.uniform(r, size - r, size=2)
    mask = _shape_mask(kind, size, cy, cx, r)
    colour = base_colour + rng.uniform(-35, 35, size=3)
    image[mask] = colour + rng.normal(0, 8.0, size=(int(mask.sum()), 3))
    return mask


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
        mask = _paint_shape(rng, image, CATEGORIES[cat], BASE_COLOURS[cat], (min_radius_frac, max_radius_frac))
        occupancy[mask] = k
        kinds.append(cat)
    objects = []
    for k, cat in enumerate(kinds):
        visible = occupancy == k
        if visible.sum() >= 20:
            objects.append((cat, visible))
    return np.clip(image, 0, 255).astype(np.uint8), objects


# ------------------------------------------------------------------------------------------ classification
COLOUR_NAMES = ("red", "green", "blue")  # the names of BASE_COLOURS' rows
NUM_TOY_CLASSES = len(CATEGORIES) * len(BASE_COLOURS)


def toy_class(index: int) -> tuple[int, int]:
    """Class ``index`` of the labelled toy set -> (shape, colour) indices. Classes 0-2 are the shapes in
    their detection colours; each further group of three shifts the colours by one."""
    if not 0 <= index < NUM_TOY_CLASSES:
        raise ValueError(f"toy class index must be in [0, {NUM_TOY_CLASSES}), got {index}")
    shape = index % len(CATEGORIES)
    return shape, (shape + index // len(CATEGORIES)) % len(BASE_COLOURS)


def toy_class_name(index: int) -> str:
    """A folder name for class ``index`` without '_' (the 1% list format splits file names at '_'),
    sorted like the indices: e.g. 'n00-square-red'."""
    shape, colour = toy_class(index)
    return f"n{index:02d}-{CATEGORIES[shape]}-{COLOUR_NAMES[colour]}"


def render_labelled(rng: np.random.Generator, size: int, index: int) -> np.ndarray:
    """An RGB uint8 image [size, size, 3] of toy class ``index``: one large shape of the class's kind
    and colour family on a noisy background, over up to two small distractor shapes of any kind."""
    image = rng.normal(100.0, 20.0, size=(size, size, 3)) + rng.uniform(-40, 40, size=3)
    for _ in range(int(rng.integers(0, 3))):
        cat = int(rng.integers(len(CATEGORIES)))
        _paint_shape(rng, image, CATEGORIES[cat], BASE_COLOURS[int(rng.integers(len(BASE_COLOURS)))], (0.06, 0.12))
    shape, colour = toy_class(index)
    _paint_shape(rng, image, CATEGORIES[shape], BASE_COLOURS[colour], (0.22, 0.38))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_classification_set(root: str | Path, num_classes: int = 3, per_class_train: int = 16,
                             per_class_val: int = 4, size: int = 64, seed: int = 0,
                             subset_per_class: int = 1) -> Path:
    """Write ImageNet's layout ``root/{train,val}/<class>/<class>_<n>.JPEG`` for ``num_classes`` toy
    classes (at most ``NUM_TOY_CLASSES``), and ``root/subset.txt``: the first ``subset_per_class``
    training files of every class in the official 1% list format (one file name per line)."""
    if not 1 <= num_classes <= NUM_TOY_CLASSES:
        raise ValueError(f"num_classes must be in [1, {NUM_TOY_CLASSES}] (shape x colour pairs), got {num_classes}")
    root = Path(root)
    rng = np.random.default_rng(seed + 3)
    subset = []
    for split, count in (("train", per_class_train), ("val", per_class_val)):
        for index in range(num_classes):
            name = toy_class_name(index)
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for n in range(count):
                file_name = f"{name}_{n:06d}.JPEG"
                Image.fromarray(render_labelled(rng, size, index)).save(root / split / name / file_name,
                                                                         format="JPEG", quality=95)
                if split == "train" and n < subset_per_class:
                    subset.append(file_name)
    (root / "subset.txt").write_text("".join(f"{line}\n" for line in subset))
    return root
