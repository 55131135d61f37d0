"""tools/visualize.py: reconstruction grids from full pretraining checkpoints (ours and the official
format), refusal of encoder-only files, and detection predictions drawn as a PNG."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from pretrain.models import build_model

ROOT = Path(__file__).resolve().parents[1]
TOOL = str(ROOT / "tools" / "visualize.py")


def _images(tmp_path, n=2, size=80):
    paths = []
    for i in range(n):
        img = Image.new("RGB", (size, size), (40 * i, 120, 200))
        img.paste((250, 30, 30), (10, 10, 50, 40))
        paths.append(str(tmp_path / f"img{i}.png"))
        img.save(paths[-1])
    return paths


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)


@pytest.mark.parametrize("model_name", ["mae_vit_tiny", "convmae_tiny"])
def test_reconstruction_grid(tmp_path, model_name):
    kwargs = {"img_size": 64} if model_name == "convmae_tiny" else {}
    model = build_model(model_name, **kwargs)
    ours = tmp_path / "ours.pth"  # tools/train_mim.py training checkpoint: the config names the model
    torch.save({"model": model.state_dict(), "config": {"model": model_name, "model_kwargs": kwargs}}, ours)
    out = tmp_path / "rec.png"
    proc = _run("recon", "--checkpoint", str(ours), "--image", *_images(tmp_path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    grid = Image.open(out)
    # 3 rows (masked / reconstruction / original) x 2 images of 64 px, 2 px padding (torchvision save_image)
    assert grid.size == (2 + 2 * 66, 2 + 3 * 66)


def test_official_format_needs_decoder(tmp_path):
    model = build_model("mae_vit_tiny")
    full = tmp_path / "full.pth"
    torch.save({"model": model.state_dict(), "args": argparse.Namespace(model="mae_vit_tiny")}, full)
    proc = _run("recon", "--checkpoint", str(full), "--image", *_images(tmp_path, 1), "--out", str(tmp_path / "r.png"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    enc = tmp_path / "enc.pth"
    torch.save({"model": model.encoder_state_dict()}, enc)
    proc = _run("recon", "--checkpoint", str(enc), "--model", "mae_vit_tiny", "--image",
                *_images(tmp_path, 1), "--out", str(tmp_path / "r.png"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_detection_drawing(tmp_path):
    pytest.importorskip("detectron2")
    from detectron2.config import LazyConfig, instantiate

    from transfer.toy_datasets import coco_toy_dataset_spec, write_coco_toy

    coco = tmp_path / "coco"
    write_coco_toy(coco, 4, 2, seed=0)
    dataset = coco_toy_dataset_spec(coco)
    cfg = LazyConfig.load(str(ROOT / "configs" / "det" / "toy_vitdet_tiny.py"))
    cfg.model.roi_heads.num_classes = len(json.loads((coco / "annotations" / "instances_train.json").read_text())["categories"])
    torch.manual_seed(0)
    weights = tmp_path / "det.pth"
    torch.save({"model": instantiate(cfg.model).state_dict()}, weights)
    image = sorted((coco / "val").iterdir())[0]
    out = tmp_path / "det.png"
    proc = _run("det", "--backbone", "mae_vit_tiny", "--weights", str(weights), "--dataset", dataset,
                "--image", str(image), "--out", str(out), "--score-threshold", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Image.open(out).size == Image.open(image).size


def test_segmentation_drawing(tmp_path):
    pytest.importorskip("mmseg")
    import transfer.seg  # noqa: F401  (registers our backbones)
    from mmseg.apis import init_model

    config = str(ROOT / "configs" / "seg" / "toy_upernet_convmae_tiny.py")
    torch.manual_seed(0)
    segmentor = init_model(config, None, device="cpu")  # random weights, saved as a segmentor checkpoint
    weights = tmp_path / "seg.pth"
    torch.save({"state_dict": segmentor.state_dict(), "meta": {}}, weights)
    image = _images(tmp_path, 1, size=128)[0]
    out = tmp_path / "seg.png"
    proc = _run("seg", "--backbone", "convmae_tiny", "--weights", str(weights), "--image", image, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Image.open(out).size == (128, 128)
