"""Defect 6 (issue 10): the MAE / SIM segmentation rows compute what mmseg's MAE recipe computes, and
mmseg's own MAE UperNet checkpoints load into them strictly.

mmseg's ``MAE`` backbone (mmseg/models/backbones/mae.py, beit.py) keeps the class token in the
attention sequence and sizes each block's relative position bias table for it. Here mmseg's own
classes are built at a tiny width with random (perturbed) weights, their state dicts go through our
key conversion into ``MIMViT`` / the shrunk paper row, load strictly, and the outputs are compared.
"""
from __future__ import annotations

import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import transfer.seg  # noqa: F401  (registers MIMViT and the strict load hook)
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules
from pretrain.checkpoints import CheckpointError, CheckpointMismatchError
from transfer.seg.load_hook import match_segmentor_state
from transfer.seg.mmseg_vit_keys import mmseg_vit_to_ours
from transfer.seg.train import build_config, config_for_backbone
from shaped_datasets import write_ade_shaped

register_all_modules(init_default_scope=True)

DIM, DEPTH, HEADS = 32, 4, 2


def perturb(module: torch.nn.Module, seed: int = 0) -> None:
    """Every parameter (tables, layer scale, class token included) away from its initial value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)


def mmseg_mae(img: int) -> dict:
    """mmseg 1.2.2 configs/_base_/models/upernet_mae.py + configs/mae/mae-base_upernet_...py backbone,
    every size reduced."""
    return dict(type="MAE", img_size=(img, img), patch_size=16, embed_dims=DIM, num_layers=DEPTH,
                num_heads=HEADS, mlp_ratio=4, out_indices=list(range(DEPTH)), attn_drop_rate=0.0,
                drop_path_rate=0.1, norm_cfg=dict(type="LN", eps=1e-6), act_cfg=dict(type="GELU"),
                norm_eval=False, init_values=1.0)


def ours_mae(img: int) -> dict:
    """The MAE paper row's MIMViT at the same sizes."""
    cfg = Config.fromfile(config_for_backbone("mae_vit_base")).model.backbone.to_dict()
    cfg.update(name="mae_vit_tiny", pretrained=None, img_size=img, pretrain_img_size=img, embed_dim=DIM,
               depth=DEPTH, num_heads=HEADS, global_blocks=tuple(range(DEPTH)), out_indices=tuple(range(DEPTH)))
    return cfg


def test_backbone_matches_mmseg_mae():
    torch.manual_seed(0)
    theirs = MODELS.build(mmseg_mae(64))
    theirs.eval()  # BEiT.train() returns None
    perturb(theirs)
    ours = MODELS.build(ours_mae(64)).eval()
    state, dropped = mmseg_vit_to_ours(theirs.state_dict(), src_prefix="", dst_prefix="net.")
    assert len(dropped) == DEPTH  # the relative_position_index buffers (computed here)
    ours.load_state_dict(state, strict=True)
    assert ours.net.blocks[0].rel_pos_bias.relative_position_bias_table.shape == ((2 * 4 - 1) ** 2 + 3, HEADS)

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = theirs(x), ours(x)
    assert len(want) == len(got) == DEPTH
    for a, b in zip(want, got):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory) -> str:
    return str(write_ade_shaped(tmp_path_factory.mktemp("ade_shaped"), num_train=1))


SHRINK = {  # the MAE paper row with a 32-d, 4-block backbone; heads narrowed for CPU time
    "model.backbone.name": "mae_vit_tiny", "model.backbone.embed_dim": DIM, "model.backbone.depth": DEPTH,
    "model.backbone.num_heads": HEADS, "model.backbone.global_blocks": tuple(range(DEPTH)),
    "model.backbone.out_indices": tuple(range(DEPTH)), "model.neck.embed_dim": DIM,
    "model.decode_head.in_channels": [DIM] * 4, "model.decode_head.channels": 16,
    "model.auxiliary_head.in_channels": DIM, "model.auxiliary_head.channels": 8,
    "optim_wrapper.paramwise_cfg.num_layers": DEPTH,
    "val_dataloader.num_workers": 0, "val_dataloader.persistent_workers": False,
    "train_dataloader.num_workers": 0, "train_dataloader.persistent_workers": False,
}


def mmseg_segmentor(cfg: Config) -> torch.nn.Module:
    """mmseg's own MAE UperNet with the row's neck and heads (what mmseg's released files hold)."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone = mmseg_mae(512)
    model = MODELS.build(model_cfg)
    perturb(model, seed=1)
    model.eval()
    return model


def test_mmseg_segmentor_checkpoint_loads_strictly_into_the_paper_row(tmp_path, ade_root):
    """A whole mmseg MAE UperNet checkpoint (keys as mmseg writes them) passed to --weights: the hook
    converts the backbone names, every tensor loads, and the segmentor computes what mmseg's does."""
    cfg = build_config(config_for_backbone("mae_vit_base"), dataset=ade_root, work_dir=str(tmp_path / "w"),
                       from_scratch=True, cfg_options=SHRINK)
    theirs = mmseg_segmentor(cfg)
    ckpt = tmp_path / "mae_upernet_mmseg.pth"
    torch.save({"state_dict": theirs.state_dict(), "meta": {}}, ckpt)

    cfg = build_config(config_for_backbone("mae_vit_base"), dataset=ade_root, work_dir=str(tmp_path / "w"),
                       weights=str(ckpt), cfg_options=SHRINK)
    assert cfg.load_from == str(ckpt) and not cfg.model.backbone.get("pretrained")
    runner = Runner.from_cfg(cfg)
    runner.load_checkpoint(cfg.load_from)  # what Runner.train/test do with load_from
    ours = runner.model.eval()

    x = torch.randn(1, 3, 512, 512)
    metas = [dict(img_shape=(512, 512), ori_shape=(512, 512), pad_shape=(512, 512))]
    with torch.no_grad():
        for got, want in zip(ours.backbone(x), theirs.backbone(x)):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
        got, want = ours.encode_decode(x, metas), theirs.encode_decode(x, metas)
    # perturbed heads give logits in the thousands: float32 summation order differs at 1e-7 relative
    assert (got - want).abs().max() <= 1e-6 * want.abs().max()
    # the same class wherever the top two logits are not tied within that precision (ties flip with
    # the thread count)
    top2 = want.topk(2, dim=1).values
    decided = (top2[:, 0] - top2[:, 1]) > 1e-5 * want.abs().max()
    assert decided.float().mean() > 0.99
    assert torch.equal(got.argmax(1)[decided], want.argmax(1)[decided])

    # a checkpoint that lacks a block is refused, naming what it lacks (mmengine alone would warn and go on)
    state = {k: v for k, v in theirs.state_dict().items() if not k.startswith("backbone.layers.3.")}
    torch.save({"state_dict": state, "meta": {}}, ckpt)
    with pytest.raises(CheckpointError, match=r"backbone\.net\.blocks"):
        runner.load_checkpoint(str(ckpt))


def test_segmentor_mismatch_names_key_groups():
    """A whole-segmentor file that does not fit is refused with its missing and unexpected keys grouped
    by layer (a segmentor has hundreds); one that fits comes back unchanged (``module.`` stripped)."""
    model = torch.nn.Module()
    model.blocks = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(3))
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    fitted, report = match_segmentor_state(model, state, "seg.pth")
    assert fitted.keys() == model.state_dict().keys() and "6 tensors" in report
    lacking = {k: v for k, v in fitted.items() if not k.startswith("blocks.1.")}
    lacking.update({"head.0.w": torch.zeros(1), "head.1.w": torch.zeros(1)})
    with pytest.raises(CheckpointMismatchError) as err:
        match_segmentor_state(model, lacking, "seg.pth")
    assert "blocks.*.weight (1)" in str(err.value) and "head.*.w (2)" in str(err.value)
