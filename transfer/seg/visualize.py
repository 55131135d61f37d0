"""Segmentation predictions drawn on an image with mmseg's own API (``init_model``,
``inference_model``, ``SegLocalVisualizer``): the segmentor of an mmengine config and a checkpoint of
tools/train_seg.py."""
from __future__ import annotations

import os

from mmengine.config import Config

import transfer.seg  # noqa: F401  (registers our backbones, installs the weights_only checkpoint loader)
from mmseg.apis import inference_model, init_model, show_result_pyplot


def draw_segmentation(config_file: str, weights: str, image_path: str, out_png: str,
                      cfg_options: dict | None = None, opacity: float = 0.5) -> str:
    """Predict the classes of ``image_path`` and write the overlay (class colours of the config's
    dataset metainfo) to ``out_png``."""
    cfg = Config.fromfile(config_file)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.model.pretrained = None
    cfg.model.backbone.pop("pretrained", None)  # the segmentor checkpoint holds the backbone weights
    model = init_model(cfg, weights, device="cpu")
    result = inference_model(model, image_path)
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    show_result_pyplot(model, image_path, result, opacity=opacity, show=False, out_file=out_png, draw_gt=False)
    return out_png
