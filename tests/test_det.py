"""Detection transfer on detectron2: our backbones inside detectron2's models and configs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.modeling import ViT, build_model as build_d2_model

from pretrain.models import build_model
from transfer.backbones import load_backbone_checkpoint
from transfer.det.backbones import MIMBackbone, add_mim_backbone_config
from transfer.det.configs import BACKBONE_CONFIGS, config_for_backbone

ROOT = Path(__file__).resolve().parents[1]


def test_vit_trunk_equals_detectron2_vit_loaded_from_the_same_mae_checkpoint(tmp_path):
    torch.manual_seed(0)
    mae = build_model("mae_vit_tiny_patch16")  # 96-d, 2 blocks, 64-px pretraining
    for p in mae.parameters():
        p.data.normal_(0, 0.05)
    ckpt = tmp_path / "mae.pth"
    torch.save({"model": mae.encoder_state_dict()}, ckpt)

    ours = MIMBackbone("vit_tiny_patch16", img_size=128, window_size=4, global_blocks=(1,)).eval()
    ours.load_pretrained(str(ckpt))
    ref = ViT(  # detectron2's own ViTDet trunk, same geometry
        img_size=128, patch_size=16, embed_dim=96, depth=2, num_heads=3, drop_path_rate=0.0, window_size=4,
        window_block_indexes=[0], use_rel_pos=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        pretrain_img_size=64, out_feature="last_feat",
    ).eval()
    encoder = torch.load(ckpt, weights_only=True)["model"]
    result = ref.load_state_dict({k: v for k, v in encoder.items() if k in ref.state_dict()}, strict=False)
    assert all("rel_pos" in k for k in result.missing_keys)  # zero-initialised in both
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        diff = (ours(x)["last_feat"] - ref(x)["last_feat"]).abs().max().item()
    assert diff <= 1e-4, f"max abs difference {diff}"


@pytest.mark.parametrize("name", sorted(BACKBONE_CONFIGS))
def test_every_config_loads_and_builds_its_backbone(name):
    cfg = LazyConfig.load(config_for_backbone(name))
    if "tiny" in name:
        backbone = instantiate(cfg.model.backbone)
    else:  # paper sizes: check the construction arguments without paying for the weights
        with torch.device("meta"):
            backbone = instantiate(cfg.model.backbone)
    trunk = next(m for m in backbone.modules() if isinstance(m, MIMBackbone))
    assert trunk.net.arch == ("convmae" if "convmae" in name else "vit")
    assert backbone.output_shape().keys() == {"p2", "p3", "p4", "p5", "p6"}


def test_paper_recipes():
    vit = LazyConfig.load(config_for_backbone("mae_vit_base"))
    assert (vit.train.max_iter, vit.dataloader.train.total_batch_size, vit.optimizer.lr) == (184375, 64, 1e-4)
    assert vit.optimizer.weight_decay == 0.1 and vit.optimizer.params.lr_factor_func.keywords["lr_decay_rate"] == 0.7
    assert vit.lr_multiplier.scheduler.milestones == [163889, 177546]
    assert vit.model.backbone.net.global_blocks == [2, 5, 8, 11] and vit.model.backbone.net.window_size == 14
    conv25 = LazyConfig.load(config_for_backbone("convmae_base"))
    conv100 = LazyConfig.load(config_for_backbone("convmae_base_100ep"))
    assert conv100.train.max_iter == 368750 and conv25.train.max_iter == 368750 // 4
    assert conv25.lr_multiplier.warmup_length == pytest.approx(4 * conv100.lr_multiplier.warmup_length)
    assert (conv25.optimizer.lr, conv25.dataloader.train.total_batch_size) == (8e-5, 32)
    assert conv25.model.backbone.bottom_up.global_blocks == [0, 3, 6, 10]


def test_yacs_config_builds_mask_rcnn_with_registered_backbone():
    cfg = add_mim_backbone_config(get_cfg())
    cfg.merge_from_file(str(Path(__import__("detectron2").model_zoo.get_config_file(
        "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"))))
    cfg.MODEL.BACKBONE.NAME = "build_mim_vit_sfp_backbone"
    cfg.MODEL.MIM.NAME, cfg.MODEL.MIM.IMG_SIZE = "vit_tiny_patch16", 128
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    model = build_d2_model(cfg).eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 128, 128) * 255}])
    assert out[0]["instances"].image_size == (128, 128)


def _run_tool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train_det.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.mark.slow
def test_toy_training_reaches_ap_and_eval_only_reproduces_it(tmp_path):
    _run_tool("--backbone", "vit_tiny", "--dataset", "toy", "--output", "train", cwd=tmp_path)
    trained = json.loads((tmp_path / "train" / "results.json").read_text())
    assert trained["bbox"]["AP"] >= 40, trained
    _run_tool("--backbone", "vit_tiny", "--dataset", "toy", "--output", "eval", "--eval-only",
              "--weights", "train/model_final.pth", cwd=tmp_path)
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert evaluated["bbox"]["AP"] == pytest.approx(trained["bbox"]["AP"], abs=1e-6)
    assert evaluated["segm"]["AP"] == pytest.approx(trained["segm"]["AP"], abs=1e-6)


def test_missing_dataset_is_a_clear_error(tmp_path):
    env = {**os.environ, "DETECTRON2_DATASETS": str(tmp_path / "nowhere")}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train_det.py"), "--backbone", "vit_tiny"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "instances_train2017.json" in proc.stderr and "--dataset toy" in proc.stderr
