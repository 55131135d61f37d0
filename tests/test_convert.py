"""Checkpoint conversion: official-format pretraining checkpoints (MAE / SIM / ConvMAE full training
files with an ``args`` Namespace, and encoder-only exports) -> detectron2 / mmseg checkpoints that load
into models built from our configs, giving the same trunk features as loading the original file
directly through ``transfer.backbones.load_backbone_checkpoint``."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pretrain.checkpoints import CheckpointError, CheckpointMismatchError
from pretrain.models import build_model
from transfer.backbones import load_backbone_checkpoint
from transfer.convert import convert_checkpoint, identify_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DET_VIT = os.path.join(ROOT, "configs", "det", "toy_vitdet_tiny.py")
DET_CONVMAE = os.path.join(ROOT, "configs", "det", "toy_convmae_tiny.py")
SIM_DIMS = ["model.backbone.net.embed_dim=64", "model.backbone.net.num_heads=2"]  # sim_vit_tiny is 64-d


def _official(tmp_path, model_name: str, encoder_only: bool = False) -> str:
    """A checkpoint in the official release format: {'model': state_dict, 'args': Namespace, 'epoch'}
    (training checkpoints) or {'model': encoder state dict} (mae_pretrain_vit_base.pth style)."""
    torch.manual_seed(0)
    model = build_model(model_name)
    with torch.no_grad():  # non-trivial values everywhere (zero-initialised tables would hide mistakes)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    path = str(tmp_path / f"{model_name}{'_enc' if encoder_only else ''}.pth")
    if encoder_only:
        torch.save({"model": model.encoder_state_dict()}, path)
    else:
        torch.save({"model": model.state_dict(), "args": argparse.Namespace(model=model_name), "epoch": 1599}, path)
    return path


def test_identify_checkpoint():
    assert identify_checkpoint(build_model("mae_vit_tiny").state_dict()) == "mae"
    assert identify_checkpoint(build_model("sim_vit_tiny").state_dict()) == "sim"
    assert identify_checkpoint(build_model("convmae_tiny").state_dict()) == "convmae"
    assert identify_checkpoint(build_model("mae_vit_tiny").encoder_state_dict()) == "vit-encoder"
    with pytest.raises(CheckpointMismatchError, match=r"roi_heads\.box_predictor\.w"):  # the key that tells
        identify_checkpoint({"backbone.net.net.pos_embed": torch.zeros(1), "roi_heads.box_predictor.w": torch.zeros(1)})
    with pytest.raises(CheckpointMismatchError, match=r"fc\.weight"):
        identify_checkpoint({"fc.weight": torch.zeros(1)})


# ---- detectron2 ---------------------------------------------------------------------------------
d2 = pytest.importorskip  # detectron2 tests below skip where it is not installed


@pytest.mark.parametrize(
    "model_name, encoder_only, config, overrides, prefix",
    [
        ("mae_vit_tiny", False, DET_VIT, [], "backbone.net.net."),
        ("mae_vit_tiny", True, DET_VIT, [], "backbone.net.net."),
        ("sim_vit_tiny", False, DET_VIT, SIM_DIMS, "backbone.net.net."),
        ("convmae_tiny", False, DET_CONVMAE, [], "backbone.bottom_up.net."),
    ],
)
def test_detectron2_checkpoint_loads_and_matches_direct_loading(tmp_path, model_name, encoder_only, config,
                                                                overrides, prefix):
    d2("detectron2")
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import LazyConfig, instantiate

    from transfer.convert import find_trunk
    from transfer.det.convert import convert_for_detectron2

    official = _official(tmp_path, model_name, encoder_only)
    out = str(tmp_path / "d2.pth")
    result = convert_for_detectron2(official, out, config, overrides)
    assert result.prefix == prefix and all(k.startswith(prefix) for k in result.state_dict)
    assert not result.report.missing or all("rel" in k for k in result.report.missing)

    cfg = LazyConfig.apply_overrides(LazyConfig.load(config), overrides)
    model = instantiate(cfg.model).eval()
    own = model.state_dict()
    assert set(result.state_dict) <= set(own), "converted keys must be the detector's own names"
    DetectionCheckpointer(model).load(out)

    direct = instantiate(cfg.model.backbone).eval()
    _, trunk = find_trunk(direct)
    load_backbone_checkpoint(trunk, official)
    x = torch.randn(1, 3, 192, 192)
    with torch.no_grad():
        got = find_trunk(model)[1](x)
        want = trunk(x)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)
    # tools/train_det.py --weights takes the converted file too (it is not a whole-detector checkpoint)
    from transfer.det.engine import load_weights

    again = instantiate(cfg.model).eval()
    load_weights(again, out)
    with torch.no_grad():
        got = find_trunk(again)[1](x)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)


def test_detectron2_refuses_other_architecture_and_unknown_files(tmp_path):
    d2("detectron2")
    from transfer.det.convert import convert_for_detectron2

    convmae = _official(tmp_path, "convmae_tiny")
    with pytest.raises(CheckpointMismatchError, match="convmae"):
        convert_for_detectron2(convmae, tmp_path / "x.pth", DET_VIT)
    mae = _official(tmp_path, "mae_vit_tiny")
    with pytest.raises(CheckpointMismatchError, match=r"patch_embed\.proj\.weight"):  # 96-d MAE into a 64-d trunk
        convert_for_detectron2(mae, tmp_path / "x.pth", DET_VIT, SIM_DIMS)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.txt"):
        convert_for_detectron2(str(text), tmp_path / "x.pth", DET_VIT)
    training = tmp_path / "checkpoint-00000010.pth"  # what tools/train_mim.py writes (pretrain.engine.train)
    torch.save({"model": build_model("mae_vit_tiny").state_dict(), "optimizer": {}, "config": {},
                "rng": [{"numpy": np.random.get_state()}]}, training)
    with pytest.raises(CheckpointError, match="--export"):
        convert_for_detectron2(str(training), tmp_path / "x.pth", DET_VIT)


def test_convert_checkpoint_cli(tmp_path):
    d2("detectron2")
    official = _official(tmp_path, "mae_vit_tiny")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "convert_checkpoint.py"), official, str(tmp_path / "o.pth"),
           "--to", "detectron2", "--backbone", "mae_vit_tiny"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "mapped:  27 tensors -> 'backbone.net.net.*'" in run.stdout
    assert "dropped: cls_token (1), decoder_blocks.* (" in run.stdout
    bad = tmp_path / "bad.pth"
    torch.save({"roi_heads.x": torch.zeros(1), "backbone.net.net.pos_embed": torch.zeros(1)}, bad)
    cmd[2] = str(bad)
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "--weights" in run.stderr  # a detector is not converted: it goes to train_det as it is


# ---- mmseg --------------------------------------------------------------------------------------
SEG_VIT = os.path.join(ROOT, "configs", "seg", "toy_upernet_vit_tiny.py")
SEG_CONVMAE = os.path.join(ROOT, "configs", "seg", "toy_upernet_convmae_tiny.py")
# the toy UperNet ViT has 4 blocks, the tiny MAE / SIM 2
SEG_VIT_DEPTH2 = {"model.backbone.depth": 2, "model.backbone.global_blocks": (0, 1),
                  "model.backbone.out_indices": (0, 1, 1, 1)}


@pytest.mark.parametrize(
    "model_name, config, options",
    [
        ("mae_vit_tiny", SEG_VIT, SEG_VIT_DEPTH2),
        ("sim_vit_tiny", SEG_VIT, {**SEG_VIT_DEPTH2, "model.backbone.embed_dim": 64,
                                           "model.backbone.num_heads": 2}),
        ("convmae_tiny", SEG_CONVMAE, None),
    ],
)
def test_mmseg_checkpoint_loads_and_matches_direct_loading(tmp_path, model_name, config, options):
    pytest.importorskip("mmseg")
    from mmengine.runner import load_checkpoint

    from transfer.convert import find_trunk
    from transfer.seg.convert import convert_for_mmseg, mmseg_backbone

    official = _official(tmp_path, model_name)
    out = str(tmp_path / "seg.pth")
    result = convert_for_mmseg(official, out, config, options)
    assert result.prefix == "backbone.net."

    prefix, trunk = find_trunk(mmseg_backbone(config, options), "backbone.")  # a fresh backbone: load the converted file into it
    wrapper = torch.nn.Module()
    wrapper.backbone = torch.nn.Module()
    wrapper.backbone.net = trunk
    load_checkpoint(wrapper, out, map_location="cpu", strict=False)  # heads are not in the file

    _, direct = find_trunk(mmseg_backbone(config, options), "backbone.")
    load_backbone_checkpoint(direct, official)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        got, want = trunk.eval()(x), direct.eval()(x)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0)
    assert find_trunk(wrapper)[0] == prefix


def test_convert_state_dict_in_memory():
    """The core works on a state dict too (no file, no framework)."""
    from transfer.backbones import build_backbone

    trunk = build_backbone("mae_vit_tiny")
    result = convert_checkpoint(build_model("mae_vit_tiny").state_dict(), trunk, "backbone.net.net.")
    assert result.family == "mae" and len(result.state_dict) == 27
    assert any(k.startswith("decoder_blocks.") for k in result.report.dropped)


def test_summary_has_one_line_per_field_when_several_tensors_are_resized():
    """tools/convert_checkpoint.py prints this summary; a ViTDet conversion resizes one rel-pos table per block."""
    from pretrain.checkpoints import LoadReport
    from transfer.convert import ConversionResult

    resized = ["blocks.0.attn.rel_pos_h: (27, 64) -> (127, 64)", "blocks.0.attn.rel_pos_w: (27, 64) -> (127, 64)"]
    report = LoadReport("x.pth", loaded=["a"], missing=["blocks.0.attn.rel_pos_h"], dropped=["decoder_pred.weight"],
                        resized=resized)
    lines = ConversionResult({}, "x.pth", "mae", "backbone.", report).summary().splitlines()
    assert [line.split(":")[0] for line in lines] == ["input", "mapped", "resized", "missing", "dropped"]
    assert all(entry in lines[2] for entry in resized)
    assert "decoder_pred" in lines[4]
