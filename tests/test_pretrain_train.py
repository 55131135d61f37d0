"""Pretraining runs on toy images: loss falls for MAE / ConvMAE / SIM, the skipped-image count, the
reconstruction grid, config files and overrides, and the encoder export round trip."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from pretrain_toy import config_path, write_images

from pretrain.config import load_config
from pretrain.engine import train
from pretrain.models import build_model
from pretrain.optim import lr_at, momentum_at, param_groups

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from pretrain.checkpoints import load_pretrained


def run(tmp_path, config: str, *overrides: str, images: int = 8, **kwargs) -> tuple[dict, list[dict]]:
    data = write_images(str(tmp_path / "data"), images, 64)
    cfg = load_config(config_path(config), list(overrides), data=data, output_dir=str(tmp_path / "out"), **kwargs)
    summary = train(cfg)
    with open(tmp_path / "out" / "log.jsonl") as f:
        return summary, [json.loads(line) for line in f]


@pytest.mark.slow
@pytest.mark.parametrize("config", ["mae_tiny_toy.py", "convmae_tiny_toy.py", "sim_tiny_toy.py"])
def test_tiny_loss_falls_30_percent(tmp_path, config):
    """120 iterations on 8 toy images: mean loss of the first 4 iterations vs the last 10."""
    _, log = run(tmp_path, config, "log_interval=1")
    losses = [r["loss"] for r in log]
    first, last = sum(losses[:4]) / 4, sum(losses[-10:]) / 10
    print(f"{config}: loss {first:.4f} -> {last:.4f} ({100 * (1 - last / first):.1f}% lower)")
    assert last <= 0.7 * first, (first, last)
    if config != "sim_tiny_toy.py":
        assert os.path.isfile(tmp_path / "out" / "vis" / "epoch_0060.png")


def test_corrupt_images_are_counted_in_the_log(tmp_path):
    data = write_images(str(tmp_path / "data"), 8, 64)
    (tmp_path / "data" / "class_0" / "broken.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "data" / "class_1" / "empty.jpg").write_bytes(b"")
    cfg = load_config(config_path("mae_tiny_toy.py"), ["epochs=1", "batch_size=5", "log_interval=1"],
                      data=data, output_dir=str(tmp_path / "out"))
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        summary = train(cfg)
    assert summary["skipped_images"] == 2  # 10 files, 2 batches of 5: every file is drawn once
    last = json.loads(open(tmp_path / "out" / "log.jsonl").read().splitlines()[-1])
    assert last["skipped_images"] == 2


@pytest.mark.parametrize("model", ["mae_tiny_toy.py", "convmae_tiny_toy.py", "sim_tiny_toy.py"])
def test_export_then_load_round_trip(tmp_path, model):
    summary, _ = run(tmp_path, model, "max_iters=2", "epochs=2", "vis_every_epochs=0")
    ckpt = sorted((tmp_path / "out").glob("checkpoint-*.pth"))[-1]
    out = tmp_path / "exported.pth"
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train_mim.py"), "--export", str(ckpt),
                    "--output", str(out)], check=True)
    exported = torch.load(out, map_location="cpu", weights_only=True)
    assert set(exported) == {"model"}
    trained = torch.load(ckpt, map_location="cpu", weights_only=False)["model"]
    cfg = load_config(config_path(model))
    fresh = build_model(cfg.model, **cfg.model_kwargs)
    assert set(exported["model"]) == set(fresh.encoder_state_dict())  # exactly the encoder
    load_pretrained(fresh, str(out))  # strict on every encoder key
    state = fresh.state_dict()
    for k, v in exported["model"].items():
        assert torch.equal(state[k], v) and torch.equal(trained[k], v), k
    # the run's own end-of-training export holds the same tensors
    final = torch.load(summary["encoder"], map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(final[k], v) for k, v in exported["model"].items())


def test_config_files_and_overrides():
    cfg = load_config(config_path("sim_tiny_toy.py"), ["epochs=3", "model_kwargs.neg_weight=0.5", "dtype=bfloat16"])
    assert cfg.model == "sim_vit_tiny" and cfg.img_size == 64  # from the _base_ file
    assert cfg.epochs == 3 and cfg.model_kwargs == {"neg_weight": 0.5} and cfg.dtype == "bfloat16"
    with pytest.raises(KeyError, match="epoch"):
        load_config(config_path("mae_tiny_toy.py"), ["epoch=3"])
    from pretrain.models import list_models

    for name, eff in (("mae_vit_base_800ep.py", 4096), ("mae_vit_large_1600ep.py", 4096),
                      ("mae_vit_huge_1600ep.py", 4096), ("convmae_base_1600ep.py", 3072),
                      ("sim_vit_base_1600ep.py", 4096)):
        paper = load_config(config_path(name))
        assert paper.batch_size * paper.accum_iter * 8 == eff, name  # on one node of 8 GPUs
        assert paper.model in list_models() and paper.img_size == 224 and paper.warmup_epochs == 40


def test_schedules_and_param_groups():
    sched = dict(base_lr=1.0, warmup_epochs=40, epochs=800, min_lr=0.0)
    assert lr_at(0, **sched) == 0 and lr_at(20, **sched) == 0.5 and lr_at(40, **sched) == 1.0
    assert abs(lr_at(420, **sched) - 0.5) < 1e-12 and lr_at(800, **sched) < 1e-12
    assert momentum_at(0, 0.995, 800) == 0.995 and abs(momentum_at(800, 0.995, 800) - 1.0) < 1e-12
    assert momentum_at(400, 0.995, 800, "const") == 0.995
    model = build_model("mae_vit_tiny")
    decay, no_decay = param_groups(model, 0.05, no_wd_tokens=True)
    names = {id(p): n for n, p in model.named_parameters()}
    nd = {names[id(p)] for p in no_decay["params"]}
    assert {"cls_token", "mask_token", "norm.weight", "blocks.0.attn.qkv.bias"} <= nd
    assert "blocks.0.attn.qkv.weight" not in nd and "pos_embed" not in nd  # pos_embed is frozen
    _, official = param_groups(model, 0.05, no_wd_tokens=False)
    assert "cls_token" not in {names[id(p)] for p in official["params"]}
