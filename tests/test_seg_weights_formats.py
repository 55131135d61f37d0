"""tools/train_seg.py --weights FILE with a backbone-only file in mmseg's ViT names.

mmseg's MAE / BEiT UperNet configs start from backbone files written by mmseg's own converter
(tools/model_converters/beit2mmseg.py, e.g. ``pretrain/mae_pretrain_vit_base_mmcls.pth``): a plain state
dict named as mmseg's ``MAE`` backbone names its parameters (``layers.N.ln1``, ``patch_embed.projection``,
...), without ``backbone.``. Before: such a file was refused as 'unrecognised' (mmseg's backbone state
dict) or, for the converter's real output (which also keeps copies of ``patch_embed.proj.*``), taken for
an encoder of ours that then lacked every block (strict) or silently left every block at init
(--allow-partial-weights). Now it loads through ``transfer.seg.mmseg_vit_keys`` with the report,
strictness and flag of pretraining checkpoints.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import mmseg
import pytest
import torch

import transfer.seg  # noqa: F401  (registers MIMViT)
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules
from pretrain.checkpoints import CheckpointError, CheckpointKind, PartialLoadError, classify_checkpoint
from pretrain.models import build_model
from transfer.seg.mmseg_vit_keys import mmseg_backbone_to_ours, mmseg_vit_to_ours
from transfer.seg.train import build_config, config_for_backbone
from transfer.toy_datasets import write_ade_toy

register_all_modules(init_default_scope=True)

TOY = config_for_backbone("mae_vit_tiny")  # ViT 96-d x 4 blocks, 3 heads, 128 px: the MAE recipe shrunk
CONVERTER = Path(mmseg.__file__).parent / ".mim" / "tools" / "model_converters" / "beit2mmseg.py"


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> str:
    return str(write_ade_toy(tmp_path_factory.mktemp("ade"), num_train=2, num_val=1, size=64))


def mmseg_mae_backbone(depth: int = 4) -> torch.nn.Module:
    """mmseg's own MAE backbone at the toy row's sizes, every parameter away from its initial value."""
    torch.manual_seed(0)
    model = MODELS.build(dict(type="MAE", img_size=(128, 128), patch_size=16, embed_dims=96, num_layers=depth,
                              num_heads=3, mlp_ratio=4, out_indices=list(range(depth)),
                              norm_cfg=dict(type="LN", eps=1e-6), init_values=1.0))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
    model.eval()  # BEiT.train() returns None
    return model


def beit2mmseg(state: dict) -> dict:
    """mmseg 1.2.2's own converter (tools/model_converters/beit2mmseg.py in the installed wheel)."""
    spec = importlib.util.spec_from_file_location("beit2mmseg", CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.convert_beit(state))


def load_toy_row(tmp_path, toy_root, weights: str, allow_partial: bool = False) -> torch.nn.Module:
    """What tools/train_seg.py --weights does up to the backbone's init_weights (the Runner calls it)."""
    cfg = build_config(TOY, dataset=toy_root, work_dir=str(tmp_path / "w"), weights=weights,
                       allow_partial_weights=allow_partial)
    assert "backbone initialised from" in cfg.weights_summary and not cfg.get("load_from")
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    return backbone.eval()


def test_classification():
    theirs = mmseg_mae_backbone(depth=1).state_dict()
    official = build_model("mae_vit_tiny").state_dict()
    assert classify_checkpoint(theirs) is CheckpointKind.MMSEG_VIT_BACKBONE  # was UNKNOWN
    assert classify_checkpoint({"state_dict": theirs}) is CheckpointKind.MMSEG_VIT_BACKBONE
    assert classify_checkpoint(beit2mmseg(official)) is CheckpointKind.MMSEG_VIT_BACKBONE  # was ENCODER
    assert classify_checkpoint({"model": official}) is CheckpointKind.MAE
    segmentor = {f"backbone.{k}": v for k, v in theirs.items()} | {"decode_head.conv_seg.weight": torch.zeros(1)}
    assert classify_checkpoint({"state_dict": segmentor}) is CheckpointKind.MMSEG


@pytest.mark.parametrize("wrap", ["plain", "state_dict"])
def test_mmseg_backbone_file_loads_every_tensor(tmp_path, toy_root, wrap):
    """mmseg's MAE backbone saved as its converter saves it -> --weights: every backbone tensor equals the
    file's (through the same key map as mmseg's segmentor checkpoints), and the backbone computes what
    mmseg's does."""
    theirs = mmseg_mae_backbone()
    path = tmp_path / "mae_pretrain_vit_tiny_mmcls.pth"
    torch.save(theirs.state_dict() if wrap == "plain" else {"state_dict": theirs.state_dict()}, path)

    ours = load_toy_row(tmp_path, toy_root, str(path))
    want, _ = mmseg_vit_to_ours(theirs.state_dict(), src_prefix="", dst_prefix="")
    got = ours.net.state_dict()
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert torch.equal(got[key], value), key
    report = ours.load_report
    assert not report.missing and len(report.loaded) == len(got) and "mmseg's ViT names" in report.source
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(ours(x), theirs(x)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)  # float32 summation order


def test_converter_output_loads_as_the_official_file(tmp_path, toy_root):
    """An official-format MAE pretraining file (ours: mae_vit_tiny, 2 blocks) and mmseg's beit2mmseg output
    of it load the same tensors. Before, the converted file was taken for an encoder without blocks."""
    torch.manual_seed(0)
    official = build_model("mae_vit_tiny").state_dict()
    torch.save({"model": official}, tmp_path / "official.pth")
    torch.save(beit2mmseg(official), tmp_path / "converted.pth")

    with pytest.raises(PartialLoadError):  # 2 of the row's 4 blocks
        load_toy_row(tmp_path, toy_root, str(tmp_path / "converted.pth"))
    direct = load_toy_row(tmp_path, toy_root, str(tmp_path / "official.pth"), allow_partial=True)
    converted = load_toy_row(tmp_path, toy_root, str(tmp_path / "converted.pth"), allow_partial=True)
    assert converted.load_report.loaded == direct.load_report.loaded
    assert "blocks.1.attn.qkv.weight" in converted.load_report.loaded
    assert converted.load_report.missing == direct.load_report.missing
    a, b = direct.net.state_dict(), converted.net.state_dict()
    for key in direct.load_report.loaded:
        assert torch.equal(a[key], b[key]), key
    # the converter's leftovers (official names it copies: final norm, decoder, mask token) are reported
    assert any(k.startswith("decoder") for k in converted.load_report.dropped)


def test_strictness_and_flag_as_for_pretraining_checkpoints(tmp_path, toy_root):
    state = {k: v for k, v in mmseg_mae_backbone().state_dict().items() if not k.startswith("layers.3.")}
    torch.save(state, tmp_path / "three_blocks.pth")
    with pytest.raises(PartialLoadError) as err:
        load_toy_row(tmp_path, toy_root, str(tmp_path / "three_blocks.pth"))
    assert {k.split(".")[1] for k in err.value.left_at_init} == {"3"}
    ours = load_toy_row(tmp_path, toy_root, str(tmp_path / "three_blocks.pth"), allow_partial=True)
    assert {k.split(".")[1] for k in ours.load_report.missing if k.startswith("blocks.")} == {"3"}
    assert "blocks.2.mlp.fc2.weight" in ours.load_report.loaded


def test_files_that_are_neither_say_so(tmp_path, toy_root):
    """mmseg's plain VisionTransformer (mmcv attention: attn.attn.in_proj_weight) has mmseg's block names
    but no mapping: refused naming the keys; a file of no known layout: refused at build_config."""
    vit = MODELS.build(dict(type="VisionTransformer", img_size=(128, 128), embed_dims=96, num_layers=1, num_heads=3))
    torch.save(vit.state_dict(), tmp_path / "mmseg_vit.pth")
    with pytest.raises(CheckpointError, match=r"attn\.attn\.in_proj"):
        load_toy_row(tmp_path, toy_root, str(tmp_path / "mmseg_vit.pth"))
    with pytest.raises(ValueError, match=r"attn\.attn\.in_proj"):
        mmseg_backbone_to_ours(vit.state_dict())

    torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"fc\.weight"):
        load_toy_row(tmp_path, toy_root, str(tmp_path / "other.pth"))
