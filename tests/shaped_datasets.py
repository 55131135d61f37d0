"""Generated data sets with the image shapes of COCO and ADE20K (sides 480-683 px), for tests that run
the paper rows as written: detection's LSJ crop and segmentation's 512 crop meet real image geometry."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from pretrain.toy_data import CATEGORIES, render_scene
from transfer.toy_datasets import ade_label_map


def render_scene_of_shape(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, list]:
    """A square toy scene of side max(height, width) cropped to height x width: (pixels [h, w, 3],
    [(category, visible mask [h, w])])."""
    pixels, objects = render_scene(rng, max(height, width))
    return pixels[:height, :width], [(cat, mask[:height, :width]) for cat, mask in objects]

COCO_SHAPES = ((480, 640), (640, 480), (512, 512), (533, 600), (600, 497))  # (height, width)


def _polygons(mask: np.ndarray) -> list[list[float]]:
    """The outer contours of a binary mask as COCO polygons [x0, y0, x1, y1, ...]."""
    import cv2  # opencv-python-headless: part of the det extra, as pycocotools

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def _coco_annotation(mask: np.ndarray, polygon: bool) -> dict:
    """segmentation (polygons or compressed RLE), bbox and area of one instance, measured on the mask
    that the segmentation itself describes (a polygon's rasterisation, not the pixels it traces)."""
    height, width = mask.shape
    if polygon:
        segmentation = _polygons(mask)
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    else:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        segmentation = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    return {"segmentation": segmentation, "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "area": float(mask_utils.area(rle)), "iscrowd": 0}


def _is_substantial(mask: np.ndarray, min_area: int) -> bool:
    """At least ``min_area`` pixels in a box whose shorter side is at least sqrt(min_area): no sliver."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if mask.sum() < min_area:
        return False
    return min(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 >= min_area ** 0.5


def write_coco_shaped(root: str | Path, seed: int = 0, min_area: int = 2000,
                      shapes: Sequence[tuple[int, int]] = COCO_SHAPES) -> Path:
    """A small COCO-format set with COCO's image shapes (``COCO_SHAPES``: sides 480-640 px, landscape,
    portrait and square; or ``shapes``) and both kinds of instance mask that COCO-format files carry:
    the first image's masks are polygons, the second's RLE, the others alternate. Objects with fewer
    than ``min_area`` visible pixels, or cut to a sliver, are left unannotated. Writes
    ``root/images/*.jpg`` and ``root/instances.json``."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id, (height, width) in enumerate(shapes, start=1):
        kept = []
        while not kept:  # every image gets at least one annotated object
            pixels, objects = render_scene_of_shape(rng, height, width)
            kept = [(cat, mask) for cat, mask in objects if _is_substantial(mask, min_area)]
        file_name = f"{image_id:06d}.jpg"
        Image.fromarray(pixels).save(root / "images" / file_name, quality=95)
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for k, (cat, mask) in enumerate(kept):
            polygon = image_id == 1 or (image_id > 2 and k % 2 == 0)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat + 1,
                                **_coco_annotation(mask, polygon)})
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CATEGORIES)]
    doc = {"info": {"description": "generated shapes, COCO image sizes"}, "images": images,
           "annotations": annotations, "categories": categories}
    (root / "instances.json").write_text(json.dumps(doc))
    return root


ADE_SHAPES = ((512, 683), (683, 512), (512, 512), (512, 640), (600, 512))  # (height, width)


def write_ade_shaped(root: str | Path, seed: int = 0, num_train: int = 2) -> Path:
    """A small set in mmseg's ADE20K layout with ADE20K's image shapes (``ADE_SHAPES``: sides 512-683 px,
    landscape, portrait and square): the first ``num_train`` shapes in ``training``, all of them in
    ``validation``. Labels as ``write_ade_toy`` (0 "other", background 1, shapes 2..), so ADE20K's
    150-class configs read them (``reduce_zero_label``)."""
    root = Path(root)
    rng = np.random.default_rng(seed + 3)
    for split, shapes in (("training", ADE_SHAPES[:num_train]), ("validation", ADE_SHAPES)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for index, (height, width) in enumerate(shapes):
            pixels, objects = render_scene_of_shape(rng, height, width)
            name = f"ade_{split}_{index:06d}"
            Image.fromarray(pixels).save(root / "images" / split / f"{name}.jpg", quality=95)
            Image.fromarray(ade_label_map(objects, (height, width))).save(root / "annotations" / split / f"{name}.png")
    return root
