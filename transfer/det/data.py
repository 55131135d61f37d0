"""Dataset resolution for detection: COCO (detectron2's builtin names), the generated toy set, or any
COCO-format json + image folder registered from the command line."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances

import detectron2.data.datasets.builtin  # noqa: F401  (registers coco_2017_* under $DETECTRON2_DATASETS)
from transfer.toy_datasets import coco_toy_split, ensure_coco_toy

logger = logging.getLogger("detectron2")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset whose files are not where the command line or the environment says."""


@dataclass(frozen=True)
class DatasetSplits:
    train: str
    test: str


def _fast_coco_eval_available() -> bool:
    try:
        from detectron2 import _C  # noqa: F401
    except ImportError:
        return False
    return True


USE_FAST_COCO_EVAL = _fast_coco_eval_available()


def _check_files(name: str, json_file: str | os.PathLike, image_root: str | os.PathLike, hint: str) -> None:
    missing = [str(p) for p in (json_file, image_root) if not Path(p).exists()]
    if missing:
        raise DatasetNotFoundError(
            f"dataset {name!r}: missing {', '.join(missing)}. {hint} "
            "For a quick check of the pipeline without data, use --dataset toy."
        )


def register_coco_format(name: str, json_file: str | os.PathLike, image_root: str | os.PathLike) -> str:
    """Register a COCO-format json + image folder under ``name``: idempotent for the same files; a name
    registered earlier in this process with other files is registered anew (never the old files)."""
    _check_files(name, json_file, image_root, "Expected a COCO-format annotation json and its image folder.")
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name)
        if (meta.get("json_file"), meta.get("image_root")) == (str(json_file), str(image_root)):
            return name
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_coco_instances(name, {}, str(json_file), str(image_root))
    return name


def toy_dataset(root: str | os.PathLike, image_size: int = 192) -> DatasetSplits:
    """The generated toy set (written under ``root`` when missing or made otherwise) registered as
    toy_shapes_{train,val}."""
    root = ensure_coco_toy(root, size=image_size)
    return DatasetSplits(
        *(register_coco_format(f"toy_shapes_{split}", *coco_toy_split(root, split)) for split in ("train", "val")),
    )


def coco_dataset() -> DatasetSplits:
    """COCO 2017 in detectron2's layout under $DETECTRON2_DATASETS (default ./datasets)."""
    root = Path(os.getenv("DETECTRON2_DATASETS", "datasets")) / "coco"
    hint = (f"Expected COCO 2017 in detectron2's layout under $DETECTRON2_DATASETS ({root.parent}): "
            "coco/annotations/instances_{train,val}2017.json and coco/{train,val}2017/.")
    _check_files("coco_2017_train", root / "annotations/instances_train2017.json", root / "train2017", hint)
    _check_files("coco_2017_val", root / "annotations/instances_val2017.json", root / "val2017", hint)
    return DatasetSplits("coco_2017_train", "coco_2017_val")


def resolve_dataset(spec: str, toy_root: str | os.PathLike) -> DatasetSplits:
    """``coco``, ``toy``, ``TRAIN_NAME,TEST_NAME`` of registered datasets, or
    ``TRAIN_JSON:TRAIN_IMAGES,TEST_JSON:TEST_IMAGES`` for any COCO-format files."""
    if spec == "coco":
        return coco_dataset()
    if spec == "toy":
        return toy_dataset(toy_root)
    parts = spec.split(",")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise ValueError(f"--dataset {spec!r}: expected coco, toy, NAME, TRAIN,TEST or JSON:IMAGES,JSON:IMAGES")
    names = []
    for split, part in zip(("train", "test"), parts):
        if ":" in part:
            json_file, image_root = part.split(":", 1)
            names.append(register_coco_format(f"custom_{split}_{Path(json_file).stem}", json_file, image_root))
        elif part in DatasetCatalog.list():
            names.append(part)
        else:
            raise DatasetNotFoundError(
                f"--dataset: {part!r} is neither a registered dataset nor JSON:IMAGE_DIR. "
                "Use coco, toy, a registered name, or annotations.json:image_dir."
            )
    return DatasetSplits(*names)


def check_dataset(name: str, recompute_boxes: bool | None = None, shown: int = 5) -> list[dict]:
    """Load ``name``'s records once and check them before training starts: every listed image must
    exist (else DatasetNotFoundError with the count and the first ``shown``). For a training split
    (``recompute_boxes`` given: the train mapper's setting) annotations whose box has zero width or
    height are reported once, with their count and what training does with them."""
    records = DatasetCatalog.get(name)
    missing = [r["file_name"] for r in records if not os.path.isfile(r["file_name"])]
    if missing:
        raise DatasetNotFoundError(
            f"dataset {name!r}: {len(missing)} of {len(records)} images listed in its annotations are missing, "
            f"e.g. {', '.join(missing[:shown])}. Put the files there, or remove their entries from the "
            "annotation json."
        )
    if recompute_boxes is not None:
        _report_empty_boxes(name, records, recompute_boxes)
    return records


def _report_empty_boxes(name: str, records: list[dict], recompute_boxes: bool) -> None:
    empty = [(r["file_name"], a["bbox"]) for r in records for a in r.get("annotations", [])
             if len(a.get("bbox", ())) == 4 and (a["bbox"][2] <= 0 or a["bbox"][3] <= 0)]
    if not empty:
        return
    total = sum(len(r.get("annotations", [])) for r in records)
    fate = ("training uses the box of each one's mask instead (recompute_boxes=True)" if recompute_boxes
            else "training drops them (detectron2 filters empty boxes)")
    logger.warning("dataset %r: %d of %d annotations have a box of zero width or height (first: %s, bbox %s); %s.",
                   name, len(empty), total, empty[0][0], list(empty[0][1]), fate)


def num_classes(dataset_name: str) -> int:
    metadata = MetadataCatalog.get(dataset_name)
    if not hasattr(metadata, "thing_classes"):
        DatasetCatalog.get(dataset_name)  # loading fills the metadata's thing_classes
    return len(metadata.thing_classes)
