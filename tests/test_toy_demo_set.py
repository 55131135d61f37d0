"""The demo's generated COCO-format set (tools/train_det.py --dataset toy): written once with the demo's
counts, written anew when the folder holds a set made otherwise (an older release's 64 / 16 images)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from transfer import toy_datasets


def _counts(root: Path) -> tuple[int, int]:
    return tuple(len(json.loads((root / "annotations" / f"instances_{split}.json").read_text())["images"])
                 for split in ("train", "val"))


@pytest.fixture
def small_demo(monkeypatch):
    """The demo set's counts shrunk to 3 / 2 images (the real ones take seconds to render)."""
    monkeypatch.setattr(toy_datasets, "DEMO_NUM_TRAIN", 3)
    monkeypatch.setattr(toy_datasets, "DEMO_NUM_VAL", 2)


def test_the_demo_set_is_written_once_and_then_reused(small_demo, tmp_path):
    root = toy_datasets.ensure_coco_toy(tmp_path / "coco", size=64)
    assert _counts(root) == (3, 2)
    val_json = root / "annotations" / "instances_val.json"
    written = val_json.stat().st_mtime_ns
    assert toy_datasets.ensure_coco_toy(root, size=64) == root
    assert val_json.stat().st_mtime_ns == written


@pytest.mark.parametrize("stale", [
    {"num_train": 2, "num_val": 1, "size": 64},            # other counts (an older release's defaults)
    {"num_train": 3, "num_val": 2, "size": 64, "seed": 1},  # another seed
    {"num_train": 3, "num_val": 2, "size": 32},            # another size
])
def test_a_set_made_otherwise_is_written_anew(small_demo, tmp_path, stale):
    root = toy_datasets.write_coco_toy(tmp_path / "coco", **stale)
    toy_datasets.ensure_coco_toy(root, size=64)
    assert _counts(root) == (3, 2)
    doc = json.loads((root / "annotations" / "instances_train.json").read_text())
    assert {image["height"] for image in doc["images"]} == {64}


def test_a_set_without_a_generator_record_is_written_anew(small_demo, tmp_path):
    """Sets written before the jsons recorded how they were made."""
    root = toy_datasets.write_coco_toy(tmp_path / "coco", 3, 2, size=64)
    for split in ("train", "val"):
        path = root / "annotations" / f"instances_{split}.json"
        doc = json.loads(path.read_text())
        doc["info"] = {"description": "generated toy shapes"}
        doc["images"] = doc["images"][:1]
        path.write_text(json.dumps(doc))
    toy_datasets.ensure_coco_toy(root, size=64)
    assert _counts(root) == (3, 2)


def test_the_toy_dataset_of_train_det_registers_the_demo_set(small_demo, tmp_path):
    pytest.importorskip("detectron2")
    from detectron2.data import DatasetCatalog

    from transfer.det.data import resolve_dataset

    toy_datasets.write_coco_toy(tmp_path / "coco", 2, 1, size=64)  # stale
    splits = resolve_dataset("toy", toy_root=tmp_path / "coco")
    assert len(DatasetCatalog.get(splits.train)) == 3 and len(DatasetCatalog.get(splits.test)) == 2
