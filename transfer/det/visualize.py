"""Detection predictions drawn on an image with detectron2's own ``Visualizer``: the model of a
LazyConfig, the weights of a trained detector (``transfer.det.weights``), the config's test-time resize."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.detection_utils import read_image
from PIL import Image, ImageDraw

from transfer.det.data import num_classes, resolve_dataset
from transfer.det.weights import load_weights


@torch.no_grad()
def draw_detections(
    config_file: str, weights: str, image_path: str, out_png: str, dataset: str = "coco",
    score_threshold: float = 0.5, overrides: Sequence[str] = (),
) -> int:
    """Run the detector of ``config_file`` (+ key=value ``overrides``) with ``weights`` on one image and
    write the drawn boxes, masks and class names to ``out_png``. ``dataset`` (tools/train_det.py
    --dataset syntax) gives the class names and count. Returns the number of instances drawn."""
    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), list(overrides))
    splits = resolve_dataset(dataset, toy_root=os.path.join("datasets", "toy", "coco"))
    cfg.model.roi_heads.num_classes = num_classes(splits.train)
    num_classes(splits.test)  # loading the test split fills its metadata's class names
    model = instantiate(cfg.model).eval()
    load_weights(model, weights, detector_only=True)  # read without running code from the file

    fmt = cfg.model.get("input_format", "BGR")
    image = read_image(image_path, format=fmt)  # [H, W, 3] uint8 in the model's channel order
    augs = T.AugmentationList([instantiate(a) for a in cfg.dataloader.test.mapper.augmentations])
    aug_input = T.AugInput(image)
    augs(aug_input)
    tensor = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))  # [3, h, w]
    height, width = image.shape[:2]
    instances = model([{"image": tensor, "height": height, "width": width}])[0]["instances"].to("cpu")
    instances = instances[instances.scores >= score_threshold]

    rgb = np.ascontiguousarray(image if fmt == "RGB" else image[:, :, ::-1])
    metadata = MetadataCatalog.get(splits.test)
    try:
        from detectron2.utils.visualizer import Visualizer  # needs OpenCV (cv2)
    except ImportError:
        drawn = _draw_without_opencv(rgb, instances, metadata.get("thing_classes", []))
    else:
        drawn = Visualizer(rgb, metadata).draw_instance_predictions(instances).get_image()
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    Image.fromarray(drawn).save(out_png)
    return len(instances)


def _draw_without_opencv(rgb: np.ndarray, instances, class_names: Sequence[str]) -> np.ndarray:
    """Masks blended at 50 %, boxes and 'class score' labels with PIL, for environments without
    OpenCV (detectron2's Visualizer imports cv2)."""
    out = rgb.astype(np.float32)
    colors = np.random.default_rng(0).integers(60, 255, size=(max(len(instances), 1), 3))
    if instances.has("pred_masks"):
        for mask, color in zip(instances.pred_masks.numpy(), colors):  # mask [H, W] bool
            out[mask] = 0.5 * out[mask] + 0.5 * color
    img = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for box, cls, score, color in zip(instances.pred_boxes.tensor.tolist(), instances.pred_classes.tolist(),
                                      instances.scores.tolist(), colors):
        draw.rectangle(box, outline=tuple(int(c) for c in color), width=2)
        name = class_names[cls] if cls < len(class_names) else str(cls)
        draw.text((box[0] + 2, box[1] + 1), f"{name} {score:.0%}", fill=(255, 255, 255))
    return np.asarray(img)
