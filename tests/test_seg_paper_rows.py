"""The segmentation paper rows themselves (issue 10): every row's own config (configs/seg/upernet_*),
only the backbone shrunk through --cfg-options (depth / width; the heads' input widths follow, their
hidden widths are narrowed for CPU time), its data pipelines, 512x512 slide window with the row's
stride, test resize and postprocess as written, on a generated set in ADE20K's layout with ADE20K's
image shapes (512-683 px sides, landscape, portrait, square).

- one training iteration and one evaluation through tools/train_seg.py (the real tool path);
- oracle evaluation through each row's own test path: the network is replaced by one that returns
  the ground truth, resized to the network's input geometry, as one-hot logits for whatever window
  slide inference cuts; the row's slide stitching, postprocess (back to the original size) and
  IoUMetric must then give mIoU = 100.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner

import transfer.seg  # noqa: F401
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules
from pretrain.encoders import ENCODERS
from transfer.seg.train import build_config, config_for_backbone
from shaped_datasets import ADE_SHAPES, write_ade_shaped
from tool_module import load_tool

register_all_modules(init_default_scope=True)
ROOT = Path(__file__).resolve().parents[1]
PAPER_ROWS = sorted(row for e in ENCODERS.values() if e.weights for row, _ in e.seg_rows)
LIGHT = {  # CPU: narrower heads, no worker processes (nothing geometric)
    "model.decode_head.channels": 16, "model.auxiliary_head.channels": 8,
    "train_dataloader.num_workers": 0, "train_dataloader.persistent_workers": False,
    "val_dataloader.num_workers": 0, "val_dataloader.persistent_workers": False,
}
SHRINK = {
    "vit": {"model.backbone.embed_dim": 32, "model.backbone.depth": 4, "model.backbone.num_heads": 2,
            "model.backbone.global_blocks": (0, 1, 2, 3), "model.backbone.out_indices": (0, 1, 2, 3),
            "model.neck.embed_dim": 32, "model.decode_head.in_channels": [32] * 4,
            "model.auxiliary_head.in_channels": 32, "optim_wrapper.paramwise_cfg.num_layers": 4},
    "convmae": {"model.backbone.embed_dims": (16, 24, 32), "model.backbone.depths": (1, 1, 2),
                "model.backbone.num_heads": 2, "model.backbone.global_blocks": (0, 1),
                "model.decode_head.in_channels": [16, 24, 32, 32], "model.auxiliary_head.in_channels": 32,
                "optim_wrapper.paramwise_cfg.num_layers": 2},
}


def shrink(row: str) -> dict:
    return {**SHRINK["convmae" if row.startswith("convmae") else "vit"], **LIGHT}


def test_every_paper_row_is_covered():
    assert PAPER_ROWS == ["convmae_base", "mae_vit_base", "sim_vit_base"]


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory) -> str:
    return str(write_ade_shaped(tmp_path_factory.mktemp("ade_shaped"), num_train=2))


def options(row: str, **extra) -> list[str]:
    pairs = {**shrink(row), **extra}
    return ["--cfg-options"] + [f"{k}={list(v) if isinstance(v, tuple) else v}".replace(" ", "")
                                for k, v in pairs.items()]


@pytest.mark.parametrize("row", PAPER_ROWS)
def test_paper_row_trains_one_iteration_and_evaluates(tmp_path, ade_root, row, one_thread):
    work = tmp_path / "work"
    metrics = load_tool("train_seg").main(
        ["--backbone", row, "--dataset", ade_root, "--work-dir", str(work), "--from-scratch"]
        + options(row, **{"train_cfg.max_iters": 1, "train_cfg.val_interval": 1})
    )
    assert (work / "iter_1.pth").is_file()  # one training iteration ran and was saved
    assert 0.0 <= metrics["mIoU"] <= 100.0 and 0.0 <= metrics["aAcc"] <= 100.0
    logs = "".join(p.read_text() for p in work.glob("*/*.log"))
    assert "WEIGHTS: none, the backbone starts from random initialisation (--from-scratch)" in logs


# ---- oracle evaluation ----------------------------------------------------------------------------
def coordinate_image(h: int, w: int) -> torch.Tensor:
    """[1, 3, h, w]: row index, column index, 0; a window cut from it says where it was cut."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    return torch.stack([ys, xs, torch.zeros_like(ys)])[None]


def oracle_encode_decode(gt_at_input: torch.Tensor, num_classes: int):
    """encode_decode(window, metas) -> one-hot logits [1, C, h, w] of the ground truth under that window."""

    def encode_decode(window: torch.Tensor, batch_img_metas) -> torch.Tensor:
        y, x = int(window[0, 0, 0, 0]), int(window[0, 1, 0, 0])
        h, w = window.shape[2:]
        crop = gt_at_input[y:y + h, x:x + w]
        return F.one_hot(crop.clamp(max=num_classes - 1), num_classes).permute(2, 0, 1)[None].float()

    return encode_decode


@pytest.mark.parametrize("row", PAPER_ROWS)
def test_oracle_predictions_score_miou_100_through_the_rows_test_path(tmp_path, ade_root, row):
    cfg = build_config(config_for_backbone(row), dataset=ade_root, work_dir=str(tmp_path), from_scratch=True,
                       cfg_options=shrink(row))
    assert cfg.model.test_cfg.mode == "slide" and tuple(cfg.model.test_cfg.crop_size) == (512, 512)
    model = MODELS.build(cfg.model).eval()
    loader = Runner.build_dataloader(cfg.val_dataloader)
    evaluator = Evaluator(cfg.val_evaluator)
    evaluator.dataset_meta = loader.dataset.metainfo
    shapes = []
    for data in loader:
        data = model.data_preprocessor(data, False)  # the row's test path: preprocess, slide, postprocess
        (sample,) = data["data_samples"]
        h, w = data["inputs"].shape[2:]
        assert tuple(sample.img_shape) == (h, w)
        gt = sample.gt_sem_seg.data.float()[None]  # [1, 1, H0, W0], original size
        gt_at_input = F.interpolate(gt, size=(h, w), mode="nearest")[0, 0].long()  # what the network sees
        model.encode_decode = oracle_encode_decode(gt_at_input, model.out_channels)
        with torch.no_grad():
            predictions = model.predict(coordinate_image(h, w), data["data_samples"])
        evaluator.process(data_samples=predictions, data_batch=data)
        shapes.append(tuple(sample.ori_shape))
    assert sorted(shapes) == sorted(ADE_SHAPES)
    metrics = evaluator.evaluate(len(loader.dataset))
    assert metrics["mIoU"] == pytest.approx(100.0)
