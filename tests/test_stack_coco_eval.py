"""pycocotools evaluates a tiny prediction set to the AP that COCO's definition gives."""
import contextlib
import io

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def _gt(num_images: int) -> COCO:
    coco = COCO()
    coco.dataset = {
        "info": {},
        "images": [{"id": i, "width": 100, "height": 100} for i in range(num_images)],
        "categories": [{"id": 1, "name": "square"}],
        "annotations": [
            {"id": i + 1, "image_id": i, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600,
             "iscrowd": 0}
            for i in range(num_images)
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _ap(gt: COCO, dets: list[dict]) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def test_perfect_predictions_give_ap_1():
    gt = _gt(2)
    dets = [{"image_id": i, "category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.9} for i in range(2)]
    assert _ap(gt, dets) == pytest.approx(1.0)


def test_half_found_gives_51_of_101_recall_points():
    # One of two objects found exactly (highest score), the other box misses entirely: precision is 1
    # up to recall 0.5 and there is no recall beyond it, so AP = 51/101 at every IoU threshold.
    gt = _gt(2)
    dets = [
        {"image_id": 0, "category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [60, 60, 30, 30], "score": 0.8},
    ]
    assert _ap(gt, dets) == pytest.approx(51 / 101, abs=1e-9)
