"""Segmentation predictions drawn on an image with mmseg's own API (``init_model``,
``inference_model``, ``SegLocalVisualizer``): the segmentor of an mmengine config and a whole-segmentor
checkpoint (tools/train_seg.py's, or mmseg's released MAE UperNet files), loaded strictly with the same
key matching as training (``transfer.seg.load_hook.match_segmentor_state``)."""
from __future__ import annotations

import os

from mmengine.config import Config
from mmengine.logging import print_log

import transfer.seg  # noqa: F401  (registers our backbones, installs the weights_only checkpoint loader)
from mmseg.apis import inference_model, init_model, show_result_pyplot
from mmseg.registry import DATASETS
from pretrain.checkpoints import read_checkpoint, state_dict_of
from transfer.seg.load_hook import match_segmentor_state


def _dataset_meta(checkpoint: dict, cfg: Config) -> dict:
    """Class names and palette: the checkpoint's (mmengine writes them) or the config's dataset's."""
    meta = checkpoint.get("meta", {}).get("dataset_meta") if isinstance(checkpoint, dict) else None
    if meta:
        return meta
    dataset = cfg.test_dataloader.dataset
    return dict(dataset.get("metainfo") or DATASETS.get(dataset.type).METAINFO)


def draw_segmentation(config_file: str, weights: str, image_path: str, out_png: str,
                      cfg_options: dict | None = None, opacity: float = 0.5) -> str:
    """Predict the classes of ``image_path`` and write the overlay (class colours of the config's
    dataset metainfo) to ``out_png``."""
    cfg = Config.fromfile(config_file)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.model.pretrained = None
    cfg.model.backbone.pop("pretrained", None)  # the segmentor checkpoint holds the backbone weights
    model = init_model(cfg, None, device="cpu")
    checkpoint = read_checkpoint(weights)
    state, report = match_segmentor_state(model, state_dict_of(checkpoint, weights), weights)
    model.load_state_dict(state, strict=True)
    model.dataset_meta = _dataset_meta(checkpoint, cfg)
    print_log(report, logger="current")
    result = inference_model(model, image_path)
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    show_result_pyplot(model, image_path, result, opacity=opacity, show=False, out_file=out_png, draw_gt=False)
    return out_png
