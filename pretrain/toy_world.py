"""A harder generated world for the CPU-scale claim (issue 18): textured objects in cluttered scenes.

Eight classes, one per (shape, texture) pair: square, disk, triangle, cross x stripes, checker. An
object is painted as a two-colour texture (random period, orientation and phase); its first colour is
drawn from one of two colour families of its class, and every family serves four classes, so colour
alone leaves four candidates; the second colour is any other family or a grey. Textures are rotated,
objects scaled; backgrounds are smooth colour fields with blotchy clutter and stray lines; scenes are lit by a
random gain gradient and carry pixel noise; occluders and later objects cover earlier ones.

One renderer (``_compose``) paints every set: ``render_labelled`` (one large object of a class among
small distractors: classification and the unlabelled pool) and ``render_scene`` (1-4 objects with their
visible masks: detection and segmentation, written by ``transfer.toy_datasets``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

SHAPES = ("square", "disk", "triangle", "cross")
TEXTURES = ("stripes", "checker")
FAMILIES = np.array([[205.0, 55.0, 50.0], [55.0, 165.0, 65.0], [60.0, 85.0, 215.0], [215.0, 190.0, 55.0]])
GREYS = np.array([[40.0, 40.0, 40.0], [225.0, 225.0, 225.0]])  # second colours besides the families


@dataclass(frozen=True)
class WorldClass:
    """A class of the world: its shape, its texture and the two colour families of its first colour."""

    shape: str
    texture: str
    families: tuple[int, int]

    @property
    def name(self) -> str:
        return f"{self.shape}-{self.texture}"


def _classes() -> tuple[WorldClass, ...]:
    """Class i = (shape i // 2, texture i % 2), first colour from families {i mod 4, i + 1 mod 4}."""
    return tuple(WorldClass(SHAPES[i // 2], TEXTURES[i % 2], (i % 4, (i + 1) % 4)) for i in range(8))


CLASSES = _classes()
CLASS_NAMES = tuple(c.name for c in CLASSES)
NUM_CLASSES = len(CLASSES)


@dataclass(frozen=True)
class Placement:
    """One object to paint: its class index (-1: an unlabelled occluder), centre and radius in pixels."""

    cls: int
    cy: float
    cx: float
    r: float


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Inside-mask of ``shape`` of radius ``r`` in object coordinates (u down, v right, centred)."""
    if shape == "square":
        return (np.abs(u) <= 0.8 * r) & (np.abs(v) <= 0.8 * r)
    if shape == "disk":
        return u**2 + v**2 <= r**2
    if shape == "triangle":  # apex up, base at u = 0.8 r
        return (u >= -r) & (u <= 0.8 * r) & (np.abs(v) <= (u + r) * 0.62)
    if shape == "cross":
        arm = 0.36 * r
        return ((np.abs(u) <= r) & (np.abs(v) <= arm)) | ((np.abs(v) <= r) & (np.abs(u) <= arm))
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def _texture(kind: str, rng: np.random.Generator, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A 0/1 pattern over the object coordinates: stripes (period 4-8 px) or checker (cells 3-5 px)."""
    if kind == "stripes":
        period, phase = rng.uniform(4.0, 8.0), rng.uniform(0, 1)
        return (np.floor(v / period + phase) % 2).astype(np.float32)
    if kind == "checker":
        cell = rng.uniform(3.0, 5.0)
        return ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    if kind == "blotches":  # clutter only: thresholded smooth noise
        return (_smooth_noise(rng, u.shape[0], 6) > 0).astype(np.float32)
    raise ValueError(f"unknown texture {kind!r}")


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean noise [size, size] smooth over size / cells pixels (bilinear upsampling of a coarse grid)."""
    coarse = Image.fromarray(rng.normal(0, 1, (cells, cells)).astype(np.float32), mode="F")
    return np.asarray(coarse.resize((size, size), Image.BILINEAR))


def _jittered(rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    return colour * rng.uniform(0.75, 1.15) + rng.uniform(-25, 25, size=3)


def _object_colours(rng: np.random.Generator, cls: WorldClass) -> tuple[np.ndarray, np.ndarray]:
    """First colour from one of the class's families; second from another family or a grey."""
    first = int(rng.choice(cls.families))
    others = [f for f in range(len(FAMILIES)) if f != first]
    second = np.concatenate([FAMILIES[others], GREYS])[int(rng.integers(len(others) + len(GREYS)))]
    return _jittered(rng, FAMILIES[first]), _jittered(rng, second)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth colour field with blotchy clutter patches and stray lines [size, size, 3] float."""
    image = rng.uniform(70, 170, size=3) + 30.0 * np.stack([_smooth_noise(rng, size, 3) for _ in range(3)], -1)
    yy, xx = _grid(size)
    for _ in range(int(rng.integers(0, 3))):  # blotch patches
        centre, r = rng.uniform(0, size, 2), rng.uniform(0.15, 0.35) * size
        patch = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r**2) & (_texture("blotches", rng, yy, xx) > 0)
        image[patch] = _jittered(rng, np.concatenate([FAMILIES, GREYS])[int(rng.integers(6))])
    for _ in range(int(rng.integers(0, 3))):  # stray lines
        _paint_line(rng, image, None)
    return image


def _paint_line(rng: np.random.Generator, image: np.ndarray, occupancy: np.ndarray | None) -> None:
    """A straight band 1-3 px wide of a random colour across the image (an occluder when painted last)."""
    size = image.shape[0]
    yy, xx = _grid(size)
    angle, offset = rng.uniform(0, np.pi), rng.uniform(-0.4, 0.4) * size
    dist = (yy - size / 2) * np.cos(angle) - (xx - size / 2) * np.sin(angle) - offset
    band = np.abs(dist) <= rng.uniform(0.5, 1.5)
    image[band] = _jittered(rng, np.concatenate([FAMILIES, GREYS])[int(rng.integers(6))])
    if occupancy is not None:
        occupancy[band] = -1


def _paint_object(rng: np.random.Generator, image: np.ndarray, p: Placement) -> np.ndarray:
    """Paint ``p`` (upright, its texture rotated by a random angle) into ``image`` in place -> its mask."""
    yy, xx = _grid(image.shape[0])
    angle = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * (yy - p.cy) - s * (xx - p.cx), s * (yy - p.cy) + c * (xx - p.cx)
    cls = CLASSES[p.cls]
    mask = _shape_mask(cls.shape, yy - p.cy, xx - p.cx, p.r)
    first, second = _object_colours(rng, cls)
    t = _texture(cls.texture, rng, u, v)[mask][:, None]
    image[mask] = first * (1 - t) + second * t
    return mask


def _compose(rng: np.random.Generator, size: int, placements: list[Placement],
             occluders: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """The one renderer: background, ``placements`` in order (later ones cover earlier ones), then
    ``occluders`` lines, lighting and noise -> (RGB uint8 [size, size, 3], [(class, visible mask)])
    keeping objects with at least 20 visible pixels."""
    image = _background(rng, size)
    occupancy = np.full((size, size), -1, dtype=np.int64)
    for k, p in enumerate(placements):
        occupancy[_paint_object(rng, image, p)] = k
    for _ in range(occluders):
        _paint_line(rng, image, occupancy)
    yy, xx = _grid(size)
    tilt = rng.uniform(0, 2 * np.pi)
    gain = rng.uniform(0.7, 1.25) + rng.uniform(-0.3, 0.3) * ((yy * np.cos(tilt) + xx * np.sin(tilt)) / size - 0.5)
    image = image * gain[..., None] + rng.normal(0, rng.uniform(2, 8), size=image.shape)
    objects = [(p.cls, occupancy == k) for k, p in enumerate(placements)]
    return np.clip(image, 0, 255).astype(np.uint8), [(c, m) for c, m in objects if m.sum() >= 20]


def _placement(rng: np.random.Generator, size: int, cls: int, radius_frac: tuple[float, float],
               centre_frac: tuple[float, float] | None = None) -> Placement:
    r = rng.uniform(*radius_frac) * size
    low, high = centre_frac if centre_frac else (r / size, 1 - r / size)
    cy, cx = rng.uniform(low, high, size=2) * size
    return Placement(cls, float(cy), float(cx), float(r))


def render_labelled(rng: np.random.Generator, size: int, cls: int) -> np.ndarray:
    """An RGB uint8 image [size, size, 3] of class ``cls``: one large object (radius 0.26-0.4 of the
    side, near the centre) over at most one small distractor of any class, crossed by 0-1 occluding lines."""
    if not 0 <= cls < NUM_CLASSES:
        raise ValueError(f"class index must be in [0, {NUM_CLASSES}), got {cls}")
    placements = [_placement(rng, size, int(rng.integers(NUM_CLASSES)), (0.07, 0.12))
                  for _ in range(int(rng.integers(0, 2)))]
    placements.append(_placement(rng, size, cls, (0.26, 0.4), (0.42, 0.58)))
    return _compose(rng, size, placements, int(rng.integers(0, 2)))[0]


def render_scene(rng: np.random.Generator, size: int, max_objects: int = 4
                 ) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """A scene of 1-``max_objects`` objects of random classes (radius 0.08-0.22 of the side) ->
    (RGB uint8 [size, size, 3], [(class index, visible mask)]); the signature of
    ``pretrain.toy_data.render_scene``, so ``transfer.toy_datasets`` writes COCO / ADE sets of it."""
    placements = [_placement(rng, size, int(rng.integers(NUM_CLASSES)), (0.08, 0.22))
                  for _ in range(int(rng.integers(1, max_objects + 1)))]
    return _compose(rng, size, placements, int(rng.integers(0, 2)))


# ------------------------------------------------------------------------------------------ writers
def folder_name(cls: int) -> str:
    """Class folder name without '_' (the 1% list format splits file names at '_'), sorted like the
    indices: e.g. 'w0-square-stripes'."""
    return f"w{cls}-{CLASS_NAMES[cls]}"


def write_pool(root: str | Path, count: int, size: int = 64, seed: int = 0) -> Path:
    """Unlabelled pretraining images ``root/world/*.png``: half single-object images of a random class
    (as the classification set), half multi-object scenes (as the detection set)."""
    root = Path(root)
    (root / "world").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 12)
    for index in range(count):
        pixels = (render_labelled(rng, size, int(rng.integers(NUM_CLASSES))) if index % 2 == 0
                  else render_scene(rng, size)[0])
        Image.fromarray(pixels).save(root / "world" / f"{index:06d}.png")
    return root


def write_world_classification(root: str | Path, per_class_train: int = 50, per_class_val: int = 50,
                               size: int = 64, seed: int = 0, subsets: tuple[int, ...] = (32, 64)) -> Path:
    """ImageNet's layout ``root/{train,val}/<class>/<class>_<n>.JPEG`` for all classes, and for each n
    of ``subsets`` ``root/subset<n>.txt``: n // NUM_CLASSES training files of every class in the official
    1% list format (n must be a multiple of NUM_CLASSES, at most the training set)."""
    bad = [n for n in subsets if n % NUM_CLASSES or not 0 < n <= per_class_train * NUM_CLASSES]
    if bad:
        raise ValueError(f"labelled subsets must be positive multiples of {NUM_CLASSES} (balanced classes) "
                         f"of at most {per_class_train * NUM_CLASSES} images; got {bad}")
    root = Path(root)
    rng = np.random.default_rng(seed + 13)
    for split, count in (("train", per_class_train), ("val", per_class_val)):
        for cls in range(NUM_CLASSES):
            (root / split / folder_name(cls)).mkdir(parents=True, exist_ok=True)
            for n in range(count):
                Image.fromarray(render_labelled(rng, size, cls)).save(
                    root / split / folder_name(cls) / f"{folder_name(cls)}_{n:06d}.JPEG", format="JPEG", quality=95)
    for n in subsets:
        names = [f"{folder_name(c)}_{i:06d}.JPEG" for c in range(NUM_CLASSES) for i in range(n // NUM_CLASSES)]
        (root / f"subset{n}.txt").write_text("".join(f"{name}\n" for name in names))
    return root
