"""The textured toy world (pretrain/toy_world.py) through tools/make_toy_data.py --world textured: the same
seed writes the same files, every set reads with the loaders that use it (pycocotools, the ADE label maps,
pretrain.labelled_data with the balanced subsets), and colour alone does not name a class."""
from __future__ import annotations

import collections
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools import mask as mask_utils

from pretrain import toy_world
from pretrain.labelled_data import LabelledImages
from tool_module import load_tool

SMALL = ["--world", "textured", "--num-train", "2", "--num-val", "1", "--num-images", "6", "--size", "48",
         "--subsets", "8", "16"]


def make(out, *extra):
    load_tool("make_toy_data").main(["--out", str(out), *SMALL, *extra])
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    return out, make(out)


def test_same_seed_writes_the_same_files(world, tmp_path):
    out, files = world
    assert make(tmp_path / "again") == files
    other = make(tmp_path / "seed1", "--seed", "1")
    assert other.keys() == files.keys()
    assert sum(other[k] != files[k] for k in files if k.endswith((".png", ".jpg", ".JPEG"))) > 0.9 * sum(
        k.endswith((".png", ".jpg", ".JPEG")) for k in files)


def test_coco_set_is_valid(world):
    out, _ = world
    for split, count in (("train", 2), ("val", 1)):
        coco = COCO(str(out / "coco" / "annotations" / f"instances_{split}.json"))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(toy_world.CLASS_NAMES)
        assert len(coco.getImgIds()) == count and coco.getAnnIds()
        for ann in coco.loadAnns(coco.getAnnIds()):
            mask = coco.annToMask(ann)
            assert mask.shape == (48, 48) and mask.sum() == ann["area"] >= 20
            assert list(mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask)))) == ann["bbox"]
            assert Image.open(out / "coco" / split / coco.loadImgs(ann["image_id"])[0]["file_name"]).size == (48, 48)


def test_ade_label_maps(world):
    out, _ = world
    for split, count in (("training", 2), ("validation", 1)):
        labels = sorted((out / "ade" / "annotations" / split).glob("*.png"))
        assert len(labels) == count
        for label_file in labels:
            label = np.asarray(Image.open(label_file))
            image = Image.open(out / "ade" / "images" / split / f"{label_file.stem}.jpg")
            assert label.shape == (48, 48) and image.size == (48, 48) and image.mode == "RGB"
            assert 1 in label and set(np.unique(label)) <= set(range(1, toy_world.NUM_CLASSES + 2))


def test_classification_folders_and_balanced_subsets(world):
    out, _ = world
    train = LabelledImages(out / "cls", "train")
    val = LabelledImages(out / "cls", "val")
    assert train.classes == [toy_world.folder_name(c) for c in range(toy_world.NUM_CLASSES)] == val.classes
    assert collections.Counter(train.targets) == {c: 2 for c in range(toy_world.NUM_CLASSES)}
    assert collections.Counter(val.targets) == {c: 1 for c in range(toy_world.NUM_CLASSES)}
    for n in (8, 16):
        subset = LabelledImages(out / "cls", "train", subset_file=out / "cls" / f"subset{n}.txt")
        assert collections.Counter(subset.targets) == {c: n // 8 for c in range(toy_world.NUM_CLASSES)}
    image, label = train[0]
    assert image.size == (48, 48) and label == 0
    assert len(list((out / "images" / "world").glob("*.png"))) == 6


def test_unbalanced_subset_is_refused(tmp_path):
    with pytest.raises(ValueError):
        toy_world.write_world_classification(tmp_path, per_class_train=2, per_class_val=1, size=16, subsets=(12,))


def test_colour_alone_leaves_four_classes():
    by_family = collections.defaultdict(set)
    for cls in toy_world.CLASSES:
        for family in cls.families:
            by_family[family].add(cls.name)
    assert all(len(names) == 4 for names in by_family.values()) and len(by_family) == len(toy_world.FAMILIES)
    assert len({(c.shape, c.texture) for c in toy_world.CLASSES}) == toy_world.NUM_CLASSES
