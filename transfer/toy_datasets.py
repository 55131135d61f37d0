"""Writers for the generated toy sets: COCO-format instances (detection) and ADE-format label maps
(segmentation), from the shared scene generator in ``pretrain.toy_data``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from pretrain.toy_data import CATEGORIES, render_scene

# (rng, size) -> (RGB uint8 [size, size, 3], [(category index, visible mask)]): a world's scene renderer
SceneFn = Callable[[np.random.Generator, int], tuple[np.ndarray, list[tuple[int, np.ndarray]]]]


# the demo's set (tools/train_det.py --dataset toy): 256 training images; 128 validation images (~335 objects)
# so that its AP moves little between runs (docs/DETECTION.md)
DEMO_NUM_TRAIN, DEMO_NUM_VAL = 256, 128


def write_coco_toy(root: str | Path, num_train: int = DEMO_NUM_TRAIN, num_val: int = DEMO_NUM_VAL, size: int = 192,
                   seed: int = 0, scenes: SceneFn = render_scene, categories: tuple[str, ...] = CATEGORIES) -> Path:
    """Write ``root/{train,val}/*.png`` and ``root/annotations/instances_{train,val}.json`` of ``scenes``
    (default: the shapes world; ``pretrain.toy_world.render_scene`` with its CLASS_NAMES: the textured one).
    The jsons' ``info.generator`` records the counts, size, seed and renderer (``ensure_coco_toy`` reads it)."""
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    category_docs = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(categories)]
    generator = _generator_record(num_train, num_val, size, seed, scenes)
    for split, count in (("train", num_train), ("val", num_val)):
        annotation_file, image_dir = coco_toy_split(root, split)
        image_dir.mkdir(exist_ok=True)
        images, annotations = [], []
        for image_id in range(1, count + 1):
            pixels, objects = scenes(rng, size)
            file_name = f"{image_id:06d}.png"
            Image.fromarray(pixels).save(image_dir / file_name)
            images.append({"id": image_id, "file_name": file_name, "height": size, "width": size})
            for cat, visible in objects:
                rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
                x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
                rle["counts"] = rle["counts"].decode("ascii")
                annotations.append({
                    "id": len(annotations) + 1, "image_id": image_id, "category_id": cat + 1,
                    "bbox": [x, y, w, h], "area": float(mask_utils.area(rle)), "iscrowd": 0,
                    "segmentation": rle,
                })
        doc = {"info": {"description": "generated toy shapes", "generator": generator}, "images": images,
               "annotations": annotations, "categories": category_docs}
        annotation_file.write_text(json.dumps(doc))
    return root


def coco_toy_split(root: str | Path, split: str) -> tuple[Path, Path]:
    """(annotation json, image folder) of the ``split`` ('train' / 'val') of a set ``write_coco_toy`` wrote."""
    root = Path(root)
    return root / "annotations" / f"instances_{split}.json", root / split


def coco_toy_dataset_spec(root: str | Path) -> str:
    """A ``write_coco_toy`` set as ``tools/train_det.py --dataset``'s ``TRAIN_JSON:IMAGES,VAL_JSON:IMAGES``."""
    return ",".join(":".join(map(str, coco_toy_split(root, split))) for split in ("train", "val"))


def _generator_record(num_train: int, num_val: int, size: int, seed: int, scenes: SceneFn) -> dict:
    return {"num_train": num_train, "num_val": num_val, "size": size, "seed": seed,
            "scenes": f"{scenes.__module__}.{scenes.__qualname__}"}


def ensure_coco_toy(root: str | Path, size: int = 192) -> Path:
    """``write_coco_toy``'s default set under ``root``: written when missing, and written anew when the set
    found there was made otherwise (other counts, size, seed or world; an older release wrote 64 / 16)."""
    root = Path(root)
    wanted = _generator_record(DEMO_NUM_TRAIN, DEMO_NUM_VAL, size, 0, render_scene)
    val_json, _ = coco_toy_split(root, "val")
    if not val_json.exists() or json.loads(val_json.read_text()).get("info", {}).get("generator") != wanted:
        write_coco_toy(root, DEMO_NUM_TRAIN, DEMO_NUM_VAL, size=size)
    return root


def write_ade_toy(root: str | Path, num_train: int = 64, num_val: int = 16, size: int = 128,
                  seed: int = 0, scenes: SceneFn = render_scene) -> Path:
    """Write mmseg's ADE20K layout: ``images/{training,validation}/*.jpg`` and
    ``annotations/{training,validation}/*.png``. As in ADE20K, label 0 is "other" (ignored with
    ``reduce_zero_label``); background is 1 and the categories of ``scenes`` are 2, 3, ... ."""
    root = Path(root)
    rng = np.random.default_rng(seed + 1)
    for split, count in (("training", num_train), ("validation", num_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            pixels, objects = scenes(rng, size)
            label = ade_label_map(objects, (size, size))
            name = f"toy_{split}_{index:06d}"
            Image.fromarray(pixels).save(root / "images" / split / f"{name}.jpg", quality=95)
            Image.fromarray(label).save(root / "annotations" / split / f"{name}.png")
    return root


def write_image_folder(root: str | Path, count: int = 64, size: int = 96, seed: int = 0) -> Path:
    """Unlabeled images for pretraining, in an ImageNet-like ``root/toy/*.png`` tree."""
    root = Path(root)
    (root / "toy").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 2)
    for index in range(count):
        pixels, _ = render_scene(rng, size)
        Image.fromarray(pixels).save(root / "toy" / f"{index:06d}.png")
    return root


def ade_label_map(objects: list, shape: tuple[int, int]) -> np.ndarray:
    """ADE20K-style labels: 0 "other" (unused here), background 1, shape categories 2.. ."""
    label = np.ones(shape, dtype=np.uint8)
    for cat, visible in objects:
        label[visible] = cat + 2
    return label
