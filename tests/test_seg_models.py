"""mmseg glue (transfer/seg): registered backbones, pyramid shapes at 512x512, checkpoint loading through
the config path, wrong-architecture refusal, layer-wise lr decay, slide inference. CPU, tiny models
(the ViT-B / ConvMAE-B paper configs are checked on the meta device)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import transfer.seg  # noqa: F401  (registers MIMViT, MIMConvMAE, MIMLayerDecayOptimizerConstructor)
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules
from pretrain.checkpoints import CheckpointMismatchError
from pretrain.models import build_model
from transfer.backbones import build_backbone, load_backbone_checkpoint
from transfer.seg.layer_decay import get_layer_id
from transfer.seg.train import CONFIG_DIR, build_config

register_all_modules(init_default_scope=True)

PAPER_CONFIGS = {  # config -> pyramid [(C, H, W)] at 512x512
    "upernet_mae_vit_base_512_160k_ade20k.py": [(768, 128, 128), (768, 64, 64), (768, 32, 32), (768, 16, 16)],
    "upernet_sim_vit_base_512_160k_ade20k.py": [(768, 128, 128), (768, 64, 64), (768, 32, 32), (768, 16, 16)],
    # E4 = the released 3x3 stride-2 conv without padding: 32 -> 15
    "upernet_convmae_base_512_160k_ade20k.py": [(256, 128, 128), (384, 64, 64), (768, 32, 32), (768, 15, 15)],
}


def load_cfg(name: str) -> Config:
    return Config.fromfile(str(CONFIG_DIR / name))


def pyramid(model, size: int) -> list[tuple[int, int, int]]:
    """Shapes of the features the decode head sees (backbone + neck) for one size x size image."""
    feats = model.extract_feat(torch.zeros(1, 3, size, size))
    return [tuple(f.shape[1:]) for f in feats]


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
def test_paper_configs_pyramid_at_512(name):
    cfg = load_cfg(name)
    with torch.device("meta"):
        model = MODELS.build(cfg.model).eval()
        assert pyramid(model, 512) == PAPER_CONFIGS[name]
    net = model.backbone.net
    if name.startswith("upernet_convmae"):
        assert net.window_sizes == [0] * 11  # global attention in every stage-3 block
        assert all(blk.rel_pos_bias is not None and blk.gamma_1 is not None for blk in net.blocks3)
        assert net.pos_embed.requires_grad and net.global_rel_pos_bias is None
    else:
        assert net.window_sizes == [0] * 12
        assert all(blk.rel_pos_bias is not None and not blk.attn.use_rel_pos for blk in net.blocks)
        assert net.pos_embed.shape == (1, 1 + 32 * 32, 768)  # resized once to 512x512 on loading
        # mmseg's MAE keeps the class token in attention: tables of (2*32-1)^2 + 3 rows (BEiT)
        assert net.cls_token.shape == (1, 1, 768)
        assert all(blk.rel_pos_bias.relative_position_bias_table.shape == (63 * 63 + 3, 12) for blk in net.blocks)


@pytest.mark.parametrize("name, expected", [
    ("toy_upernet_vit_tiny.py", [(96, 128, 128), (96, 64, 64), (96, 32, 32), (96, 16, 16)]),
    ("toy_upernet_convmae_tiny.py", [(32, 128, 128), (48, 64, 64), (64, 32, 32), (64, 15, 15)]),
])
def test_tiny_pyramid_strides_4_8_16_32_at_512(name, expected):
    torch.manual_seed(0)
    model = MODELS.build(load_cfg(name).model).eval()
    with torch.no_grad():
        assert pyramid(model, 512) == expected


# ---- checkpoints ----------------------------------------------------------------------------------
def official_checkpoint(tmp_path: Path, model_name: str, **overrides) -> str:
    """An official-format pretraining file ({'model': full MAE / ConvMAE state dict}) with random,
    non-default values, so a load that silently does nothing cannot pass."""
    torch.manual_seed(1)
    model = build_model(model_name, **overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = tmp_path / f"{model_name}.pth"
    torch.save({"model": model.state_dict(), "epoch": 1599}, path)
    return str(path)


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> str:
    from transfer.toy_datasets import write_ade_toy

    return str(write_ade_toy(tmp_path_factory.mktemp("ade"), num_train=4, num_val=2, size=64))


@pytest.mark.parametrize("config, model_name, overrides", [
    ("toy_upernet_vit_tiny.py", "mae_vit_tiny", dict(depth=4)),
    ("toy_upernet_convmae_tiny.py", "convmae_tiny", {}),
])
@pytest.mark.parametrize("route", ["weights", "init_cfg"])
def test_config_path_loading_equals_direct_loading(tmp_path, toy_root, config, model_name, overrides, route):
    ckpt = official_checkpoint(tmp_path, model_name, **overrides)
    if route == "weights":  # tools/train_seg.py --weights -> model.backbone.pretrained
        cfg = build_config(str(CONFIG_DIR / config), dataset=toy_root, weights=ckpt, work_dir=str(tmp_path))
    else:
        cfg = load_cfg(config)
        cfg.model.backbone.init_cfg = dict(type="Pretrained", checkpoint=ckpt)
    segmentor = MODELS.build(cfg.model)
    segmentor.init_weights()

    kwargs = {k: v for k, v in cfg.model.backbone.items() if k not in ("type", "name", "pretrained", "init_cfg",
                                                                        "s3_downsample", "norm_cfg")}
    if "out_indices" in kwargs:
        kwargs["out_indices"] = sorted(set(kwargs["out_indices"]))
    direct = build_backbone(cfg.model.backbone.name, **kwargs)
    direct_report = load_backbone_checkpoint(direct, ckpt)

    got, want = segmentor.backbone.net.state_dict(), direct.state_dict()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, msg=key)
    report = segmentor.backbone.load_report
    assert report.loaded == direct_report.loaded and report.missing == direct_report.missing
    assert any(k.endswith("rel_pos_bias.relative_position_bias_table") for k in report.missing)
    assert any(k.endswith("gamma_1") for k in report.missing)
    assert any(k.startswith("decoder") for k in report.dropped)
    assert any(k.startswith("pos_embed:") for k in report.resized)  # 64/224 px pretraining -> 128 px


def test_wrong_architecture_and_missing_checkpoint_are_refused(tmp_path, toy_root):
    convmae = official_checkpoint(tmp_path, "convmae_tiny")
    cfg = load_cfg("toy_upernet_vit_tiny.py")
    cfg.model.backbone.pretrained = convmae
    segmentor = MODELS.build(cfg.model)
    with pytest.raises(CheckpointMismatchError, match="convmae checkpoint"):
        segmentor.init_weights()

    cfg.model.backbone.pretrained = str(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        MODELS.build(cfg.model)
    with pytest.raises(FileNotFoundError, match="x.pth"):
        build_config(str(CONFIG_DIR / "toy_upernet_vit_tiny.py"), dataset=toy_root, weights=str(tmp_path / "x.pth"))
    with pytest.raises(FileNotFoundError, match="no_data"):
        build_config(str(CONFIG_DIR / "toy_upernet_vit_tiny.py"), dataset=str(tmp_path / "no_data"))


# ---- layer-wise lr decay --------------------------------------------------------------------------
@pytest.mark.parametrize("name, num_layers, expected", [
    ("backbone.net.pos_embed", 12, 0),
    ("backbone.net.cls_token", 12, 0),  # mmseg get_layer_id_for_vit: backbone.cls_token -> 0
    ("backbone.net.patch_embed.proj.weight", 12, 0),
    ("backbone.net.blocks.0.attn.qkv.weight", 12, 1),
    ("backbone.net.blocks.11.rel_pos_bias.relative_position_bias_table", 12, 12),
    ("neck.upsample_4x.0.weight", 12, 13),
    ("decode_head.conv_seg.weight", 12, 13),
    # ConvMAE (Alpha-VL/ConvMAE SEG/mmcv_custom/layer_decay_optimizer_constructor.py)
    ("backbone.net.blocks1.0.conv1.weight", 11, 0),
    ("backbone.net.blocks2.1.mlp.fc1.weight", 11, 0),
    ("backbone.net.patch_embed4.weight", 11, 0),
    ("backbone.net.blocks3.10.mlp.fc2.weight", 11, 11),
    ("backbone.s3_conv.0.weight", 11, 12),
])
def test_layer_ids(name, num_layers, expected):
    assert get_layer_id(name, num_layers) == expected


def test_layer_id_beyond_num_layers_is_an_error():
    with pytest.raises(ValueError, match="num_layers"):
        get_layer_id("backbone.net.blocks.12.attn.qkv.weight", 12)


def test_layer_decay_constructor_groups():
    cfg = load_cfg("toy_upernet_vit_tiny.py")  # 4 blocks, decay 0.9, AdamW lr 1e-3 wd 0.05
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, dict(
        type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05),
        constructor="MIMLayerDecayOptimizerConstructor", paramwise_cfg=dict(num_layers=4, layer_decay_rate=0.9)))
    groups = wrapper.optimizer.param_groups
    ids = {id(p) for g in groups for p in g["params"]}
    assert ids == {id(p) for p in model.parameters() if p.requires_grad}
    assert sum(len(g["params"]) for g in groups) == len(ids)  # every parameter exactly once
    by_name = {n: g for g in groups for n in g["param_names"]}
    assert by_name["backbone.net.patch_embed.proj.weight"]["lr"] == pytest.approx(1e-3 * 0.9**5)
    assert by_name["backbone.net.blocks.3.attn.qkv.weight"]["lr"] == pytest.approx(1e-3 * 0.9)
    assert by_name["decode_head.conv_seg.weight"]["lr"] == pytest.approx(1e-3)
    assert by_name["backbone.net.blocks.0.attn.qkv.bias"]["weight_decay"] == 0.0
    assert by_name["backbone.net.blocks.0.gamma_1"]["weight_decay"] == 0.0
    assert by_name["backbone.net.blocks.0.attn.qkv.weight"]["weight_decay"] == 0.05


# ---- inference ------------------------------------------------------------------------------------
def test_slide_inference_on_an_image_larger_than_the_crop():
    """200x300 image, 128x128 crops, stride 85: ceil((200-128)/85)+1 = 2 rows x ceil((300-128)/85)+1 = 4
    columns = 8 backbone passes, logits stitched back to the full image."""
    torch.manual_seed(0)
    cfg = load_cfg("toy_upernet_vit_tiny.py")
    cfg.model.test_cfg = dict(mode="slide", crop_size=(128, 128), stride=(85, 85))
    model = MODELS.build(cfg.model).eval()
    calls = []
    model.backbone.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))

    image = torch.randint(0, 256, (3, 200, 300), dtype=torch.uint8)
    sample = SegDataSample()
    sample.set_metainfo(dict(img_shape=(200, 300), ori_shape=(200, 300), pad_shape=(200, 300)))
    with torch.no_grad():
        (pred,) = model.test_step(dict(inputs=[image], data_samples=[sample]))
    assert calls == [(1, 3, 128, 128)] * 8
    assert pred.seg_logits.data.shape == (4, 200, 300)
    assert pred.pred_sem_seg.data.shape == (1, 200, 300)


# ---- backbone options of the segmentation recipes (transfer.backbones, pure torch) ---------------
@pytest.mark.parametrize("window", [0, 2])
def test_per_block_rel_pos_bias_and_layer_scale(window):
    """Zero tables and gamma = 1 are exact no-ops at initialisation (pretrained features unchanged);
    otherwise the block equals the plain block with its table's bias handed in and the residual
    branches scaled by gamma_1 / gamma_2."""
    from transfer.backbones.vit_block import WindowBlock

    torch.manual_seed(0)
    plain = WindowBlock(32, 4, window_size=window)
    block = WindowBlock(32, 4, window_size=window, rel_pos_bias_grid=(window or 4,) * 2, init_values=1.0)
    missing, unexpected = block.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["gamma_1", "gamma_2", "rel_pos_bias.relative_position_bias_table"] and not unexpected
    x = torch.randn(2, 4, 4, 32)
    torch.testing.assert_close(block(x), plain(x))

    with torch.no_grad():
        block.rel_pos_bias.relative_position_bias_table.normal_()
        block.gamma_1.fill_(0.5)
        block.gamma_2.fill_(2.0)
        bias = block.rel_pos_bias((window or 4,) * 2)  # [heads, L, L]
        attn = plain._windowed_attention(plain.norm1(x), bias) if window else plain.attn(plain.norm1(x), bias)
        h = x + 0.5 * attn
        reference = h + 2.0 * plain.mlp(plain.norm2(h))
        torch.testing.assert_close(block(x), reference)


# ---- one keyword in both frameworks ---------------------------------------------------------------
def test_backbones_take_name_and_refuse_arch():
    """README: ``backbone=dict(type="MIMViT", name=...)`` (detectron2's MIMBackbone takes name= too);
    the old arch= is refused naming name=."""
    vit = MODELS.build(dict(type="MIMViT", name="mae_vit_tiny", out_indices=(0, 1)))
    assert vit.name == "mae_vit_tiny" and vit.net.depth == 2
    convmae = MODELS.build(dict(type="MIMConvMAE", name="convmae_tiny"))
    assert convmae.net.arch == "convmae"
    for cls, name in (("MIMViT", "mae_vit_tiny"), ("MIMConvMAE", "convmae_tiny")):
        with pytest.raises(TypeError, match="name="):
            MODELS.build(dict(type=cls, arch=name))
