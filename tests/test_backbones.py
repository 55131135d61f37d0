"""transfer.backbones: shapes, window geometry, relative positions, checkpoint loading (CPU, tiny)."""
from __future__ import annotations

import argparse
import json
import pathlib

import pytest
import torch
import torch.nn.functional as F

from pretrain.checkpoints import CheckpointMismatchError
from pretrain.models import build_model
from pretrain.models.conv_stages import GridLayout
from pretrain.models.masking import gather_tokens
from transfer.backbones import build_backbone, convert_state_dict, load_backbone_checkpoint
from transfer.backbones.pos_resize import abs_pos_for_grid, resize_pos_embed
from transfer.backbones.rel_pos import RelativePositionBias
from transfer.backbones.vit_block import Attention, WindowBlock
from transfer.backbones.window_attention import shifted_window_mask, window_partition, window_unpartition
from pretrain.encoders import ENCODERS

OFFICIAL_KEYS = pathlib.Path(__file__).parent / "data" / "official_keys"
SIZES = [(128, 128), (96, 160)]


def shapes(out: dict) -> dict:
    return {k: tuple(v.shape) for k, v in out.items()}


# ------------------------------------------------------------------------------------------------
# Output contract
# ------------------------------------------------------------------------------------------------
# (every backbone's declared outputs at its default settings: test_encoder_contract.py)
@pytest.mark.parametrize("hw", SIZES)
def test_vit_outputs_of_chosen_blocks(hw):
    torch.manual_seed(0)
    h, w = hw
    with torch.no_grad():
        bb = build_backbone("mae_vit_tiny", out_indices=(0, 1)).eval()
        assert shapes(bb(torch.randn(1, 3, h, w))) == {f"block{i}": (1, 96, h // 16, w // 16) for i in (0, 1)}
        assert bb.out_strides == {"block0": 16, "block1": 16}


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("shift", [0, 2])
def test_convmae_outputs(hw, shift):
    torch.manual_seed(0)
    bb = build_backbone("convmae_tiny", depths=(1, 1, 3), shift_size=shift).eval()
    h, w = hw
    with torch.no_grad():
        out = bb(torch.randn(2, 3, h, w))
    assert shapes(out) == {
        "s0": (2, 32, h // 4, w // 4), "s1": (2, 48, h // 8, w // 8),
        "s2": (2, 64, h // 16, w // 16), "s3": (2, 64, h // 32, w // 32),
    }
    assert bb.out_strides == {"s0": 4, "s1": 8, "s2": 16, "s3": 32}
    assert bb.out_channels == {"s0": 32, "s1": 48, "s2": 64, "s3": 64}
    assert torch.equal(out["s3"], F.max_pool2d(out["s2"], 2))


def test_base_configs_on_meta():
    """Released base configurations at 1024 px: window/global pattern, table sizes (their output shapes:
    test_encoder_contract.py)."""
    with torch.device("meta"):
        vit = build_backbone("mae_vit_base")
        conv = build_backbone("convmae_base")
    assert vit.window_sizes == [14, 14, 0] * 4
    for blk in vit.blocks:  # windowed: 2*14-1; global: 2*64-1; head_dim 64
        n = 27 if blk.window_size else 127
        assert blk.attn.rel_pos_h.shape == (n, 64) and blk.attn.rel_pos_w.shape == (n, 64)
    assert conv.window_sizes == [0, 16, 16, 0, 16, 16, 0, 16, 16, 16, 0]  # global: one-based 1/4/7/11
    assert conv.windowed_rel_pos_bias.relative_position_bias_table.shape == (31 * 31, 12)
    assert conv.global_rel_pos_bias.relative_position_bias_table.shape == (127 * 127, 12)
    assert not conv.pos_embed.requires_grad and conv.pos_embed.shape == (1, 64 * 64, 768)
    assert vit.blocks[-1].drop_path.drop_prob == pytest.approx(0.1)


def test_relative_positions_zero_init():
    vit, conv = build_backbone("mae_vit_tiny"), build_backbone("convmae_tiny")
    tables = [p for n, p in vit.named_parameters() if "rel_pos" in n]
    tables += [p for n, p in conv.named_parameters() if "relative_position_bias_table" in n]
    assert len(tables) == 2 * 2 + 2
    assert all(torch.count_nonzero(t) == 0 for t in tables)


# ------------------------------------------------------------------------------------------------
# Geometry and attention against direct computations
# ------------------------------------------------------------------------------------------------
def test_window_partition_roundtrip_with_padding():
    x = torch.randn(2, 7, 10, 3)
    windows, pad_hw = window_partition(x, 4)
    assert pad_hw == (8, 12) and windows.shape == (2 * 2 * 3, 4, 4, 3)
    assert torch.equal(windows[1], x[0, 0:4, 4:8])  # (batch 0, window row 0, window column 1)
    assert torch.equal(windows[3, :3, :], F.pad(x, (0, 0, 0, 2, 0, 1))[0, 4:8, 0:4][:3])
    assert torch.equal(window_unpartition(windows, 4, pad_hw, (7, 10)), x)


def reference_rel_pos(table: torch.Tensor, size: int) -> torch.Tensor:
    """[size, size, C]: table (interpolated to 2*size-1 as detectron2) at offset q - k."""
    if table.shape[0] != 2 * size - 1:
        table = F.interpolate(table.t()[None], size=2 * size - 1, mode="linear")[0].t()
    return torch.stack([torch.stack([table[i - j + size - 1] for j in range(size)]) for i in range(size)])


def reference_attention(attn: Attention, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """detectron2's formula with an explicit softmax: x [B, h, w, C] -> [B, h, w, C]."""
    b, h, w, c = x.shape
    nh = attn.num_heads
    q, k, v = attn.qkv(x).reshape(b, h * w, 3, nh, c // nh).permute(2, 0, 3, 1, 4)  # [B, nH, L, hd]
    logits = (q * (c // nh) ** -0.5) @ k.transpose(-2, -1)  # [B, nH, L, L]
    if attn.use_rel_pos:
        rh, rw = reference_rel_pos(attn.rel_pos_h, h), reference_rel_pos(attn.rel_pos_w, w)
        r_q = q.reshape(b, nh, h, w, -1)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, rh)
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, rw)
        logits = (logits.view(b, nh, h, w, h, w) + rel_h[..., :, None] + rel_w[..., None, :]).view(b, nh, h * w, h * w)
    if bias is not None:
        logits = logits + bias
    out = logits.softmax(-1) @ v  # [B, nH, L, hd]
    return attn.proj(out.transpose(1, 2).reshape(b, h, w, c))


@pytest.mark.parametrize("grid", [(4, 4), (5, 3)])  # (5, 3): tables interpolated
def test_attention_sdpa_bias_equals_direct_softmax(grid):
    torch.manual_seed(0)
    attn = Attention(32, 4, rel_pos_size=(4, 4), rel_pos_zero_init=False).double()
    x = torch.randn(3, *grid, 32, dtype=torch.double)
    extra = torch.randn(4, grid[0] * grid[1], grid[0] * grid[1], dtype=torch.double)
    torch.testing.assert_close(attn(x), reference_attention(attn, x))
    torch.testing.assert_close(attn(x, extra), reference_attention(attn, x, extra))


def test_window_block_equals_window_by_window_reference():
    """Windowed block on a 6x7 grid (padded to 8x8) = loop over zero-padded windows."""
    torch.manual_seed(0)
    blk = WindowBlock(32, 4, window_size=4, rel_pos_size=(4, 4), rel_pos_zero_init=False).double().eval()
    x = torch.randn(2, 6, 7, 32, dtype=torch.double)
    y = F.pad(blk.norm1(x), (0, 0, 0, 1, 0, 2))  # [2, 8, 8, C]
    att = torch.zeros_like(y)
    for i in range(0, 8, 4):
        for j in range(0, 8, 4):
            att[:, i:i + 4, j:j + 4] = reference_attention(blk.attn, y[:, i:i + 4, j:j + 4])
    ref = x + att[:, :6, :7]
    ref = ref + blk.mlp(blk.norm2(ref))
    torch.testing.assert_close(blk(x), ref)


def official_relative_position_index(h: int, w: int) -> torch.Tensor:
    """Alpha-VL/ConvMAE RelativePositionBias index construction, [h*w, h*w]."""
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += h - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    return rel.sum(-1)


def test_relative_position_bias_table():
    torch.manual_seed(0)
    rpb = RelativePositionBias((4, 5), num_heads=3)
    torch.nn.init.normal_(rpb.relative_position_bias_table)
    table = rpb.relative_position_bias_table
    expected = table[official_relative_position_index(4, 5).view(-1)].view(20, 20, 3).permute(2, 0, 1)
    torch.testing.assert_close(rpb(), expected)
    small = rpb((2, 3))  # a smaller grid reads the central offsets of the same table
    t2 = table.view(7, 9, 3)
    assert torch.equal(small[:, 0, 5], t2[3 + 0 - 1, 4 + 0 - 2])  # query (0,0), key (1,2)
    assert rpb((6, 6)).shape == (3, 36, 36)  # a larger grid enlarges the table


def test_shifted_window_mask():
    mask = shifted_window_mask((8, 8), 4, 2)
    assert mask.shape == (4, 16, 16)
    assert torch.count_nonzero(mask[0]) == 0  # the top-left window holds one region
    assert torch.isinf(mask[3]).any() and torch.all(torch.diagonal(mask, dim1=1, dim2=2) == 0)


# ------------------------------------------------------------------------------------------------
# Absolute position embedding
# ------------------------------------------------------------------------------------------------
def test_abs_pos_resize_matches_detectron2_get_abs_pos():
    torch.manual_seed(0)
    pe = torch.randn(1, 1 + 16, 8)
    ref = F.interpolate(pe[:, 1:].reshape(1, 4, 4, 8).permute(0, 3, 1, 2), size=(6, 10), mode="bicubic",
                        align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(abs_pos_for_grid(pe, (6, 10)), ref)
    assert torch.equal(abs_pos_for_grid(pe, (4, 4)), pe[:, 1:].reshape(1, 4, 4, 8))
    down = F.interpolate(pe[:, 1:].reshape(1, 4, 4, 8).permute(0, 3, 1, 2), size=(2, 3), mode="bicubic",
                         align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(abs_pos_for_grid(pe, (2, 3)), down)  # no antialiasing, as detectron2
    flat = torch.randn(1, 16, 8)  # non-square source of a square target's size
    ref = F.interpolate(flat.reshape(1, 2, 8, 8).permute(0, 3, 1, 2), size=(4, 4), mode="bicubic",
                        align_corners=False).permute(0, 2, 3, 1).reshape(1, 16, 8)
    torch.testing.assert_close(resize_pos_embed(flat, (4, 4), (2, 8), num_prefix_tokens=0), ref)


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------
def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def assert_same(backbone_sd: dict, source_sd: dict, prefix: str = "") -> None:
    """Every backbone tensor found in the source (pos_embed aside: it may be resized) is equal."""
    compared = 0
    for k, v in backbone_sd.items():
        if prefix + k in source_sd and k != "pos_embed":
            assert torch.equal(v, source_sd[prefix + k]), k
            compared += 1
    assert compared > 10


def test_load_mae_checkpoint_file(tmp_path):
    torch.manual_seed(0)
    mae = perturbed(build_model("mae_vit_tiny"))
    path = tmp_path / "checkpoint-799.pth"  # an official training checkpoint carries args
    torch.save({"model": mae.state_dict(), "args": argparse.Namespace(lr=1e-4), "epoch": 799}, path)
    bb = build_backbone("mae_vit_tiny")
    report = load_backbone_checkpoint(bb, path)
    assert_same(bb.state_dict(), mae.state_dict())
    assert torch.equal(bb.blocks[1].mlp.fc2.weight, mae.blocks[1].mlp.fc2.weight)
    assert torch.equal(bb.pos_embed, mae.pos_embed)
    assert {"cls_token", "norm.weight", "mask_token", "decoder_embed.weight"} <= set(report.dropped)
    assert all("rel_pos" in k for k in report.missing) and len(report.missing) == 4
    # encoder-only, wrapped as DDP would save it
    enc = {"module." + k: v for k, v in mae.encoder_state_dict().items()}
    bb = build_backbone("mae_vit_tiny")
    report = load_backbone_checkpoint(bb, enc)
    assert_same(bb.state_dict(), mae.state_dict())
    assert set(report.dropped) == {"cls_token", "norm.weight", "norm.bias"}


def test_load_sim_checkpoint_uses_online_encoder():
    torch.manual_seed(0)
    sim = perturbed(build_model("sim_vit_tiny"))
    bb = build_backbone("sim_vit_tiny")
    report = load_backbone_checkpoint(bb, sim.state_dict())
    assert_same(bb.state_dict(), sim.state_dict())
    assert not torch.equal(bb.blocks[0].attn.qkv.weight, sim.state_dict()["mm_blocks.0.attn.qkv.weight"])
    assert any(k.startswith("mm_blocks.") for k in report.dropped)


def test_load_convmae_checkpoint_resizes_pos_embed():
    torch.manual_seed(0)
    cm = perturbed(build_model("convmae_tiny"))
    bb = build_backbone("convmae_tiny")
    report = load_backbone_checkpoint(bb, {"module." + k: v for k, v in cm.state_dict().items()})
    assert_same(bb.state_dict(), cm.state_dict())
    ref = F.interpolate(cm.pos_embed.reshape(1, 14, 14, 64).permute(0, 3, 1, 2), size=(8, 8), mode="bicubic",
                        align_corners=False).permute(0, 2, 3, 1).reshape(1, 64, 64)
    torch.testing.assert_close(bb.pos_embed, ref)
    assert report.resized == ["pos_embed: (1, 196, 64) -> (1, 64, 64)"]
    assert {"stage1_output_decode.weight", "norm.weight", "decoder_pred.weight"} <= set(report.dropped)


def test_loaded_convmae_backbone_computes_the_pretraining_encoders_features():
    """Equal weights are not enough: at the pretraining resolution (64 px: a 4 x 4 stage-3 grid that one
    4 x 4 window covers) with nothing masked, every stage of the transfer backbone is the pretraining
    encoder's. (The ViT backbones cannot match so: ViTDet drops the class token that MAE attends to.)"""
    torch.manual_seed(0)
    model = perturbed(build_model("convmae_tiny", img_size=64)).eval()
    bb = build_backbone("convmae_tiny", img_size=64).eval()
    load_backbone_checkpoint(bb, model.state_dict())
    imgs = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = bb(imgs)
        _, _, ids_restore, feats = model.forward_encoder(imgs, 0.0, return_features=True)
    assert bb.window_sizes == [0, 4]
    torch.testing.assert_close(out["s0"], feats["stage1"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["s1"], feats["stage2"], atol=1e-5, rtol=1e-5)
    stage3 = GridLayout(4, 4).to_map(gather_tokens(feats["stage3"], ids_restore))  # kept order -> raster
    torch.testing.assert_close(out["s2"], stage3, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("ref_name", ["mae_vit_base", "sim_vit_base", "convmae_base"])
def test_official_key_lists_fit(ref_name):
    """Every backbone weight but the relative position tables comes from the official checkpoint."""
    keys = json.loads((OFFICIAL_KEYS / f"{ENCODERS[ref_name].pretrain_factory}.json").read_text())["keys"]
    with torch.device("meta"):
        bb = build_backbone(ref_name)
        sd = {k: torch.empty(s) for k, s in keys.items()}
    _, report = convert_state_dict(bb, sd, ref_name)
    assert report.missing and all("rel_pos" in k for k in report.missing)
    assert "pos_embed" in report.loaded and not any(k.startswith("decoder") for k in report.loaded)


def test_wrong_architecture_or_size_is_refused():
    cm = build_model("convmae_tiny").state_dict()
    with pytest.raises(CheckpointMismatchError, match="patch_embed1"):
        load_backbone_checkpoint(build_backbone("mae_vit_tiny"), cm)
    with pytest.raises(CheckpointMismatchError, match="convmae"):
        load_backbone_checkpoint(build_backbone("convmae_tiny"), build_model("mae_vit_tiny").state_dict())
    sim = build_model("sim_vit_tiny").state_dict()  # 64-d into a 96-d ViT
    with pytest.raises(CheckpointMismatchError, match=r"patch_embed\.proj\.weight"):
        load_backbone_checkpoint(build_backbone("mae_vit_tiny"), sim)


def test_activation_checkpointing_same_gradients():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 96)
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(1)
        bb = build_backbone("mae_vit_tiny", use_act_checkpoint=ckpt).train()
        bb(x)["last_feat"].square().mean().backward()
        grads.append(bb.blocks[0].attn.qkv.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_vit_matches_detectron2_vit():
    """Same state dict (strict) and outputs as detectron2's ViT, padding and rel-pos resizing included."""
    d2 = pytest.importorskip("detectron2.modeling")
    from functools import partial

    torch.manual_seed(0)
    ref = d2.ViT(
        img_size=128, patch_size=16, embed_dim=96, depth=3, num_heads=3, drop_path_rate=0.0, window_size=4,
        window_block_indexes=[0, 2], use_rel_pos=True, rel_pos_zero_init=False,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), pretrain_img_size=64,
    ).eval()
    ours = build_backbone("mae_vit_tiny", depth=3, global_blocks=(1,)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    for hw in [(128, 128), (80, 112)]:  # 80x112: 5x7 grid, windows padded, global tables resized
        x = torch.randn(1, 3, *hw)
        with torch.no_grad():
            torch.testing.assert_close(ours(x)["last_feat"], ref(x)["last_feat"], rtol=1e-5, atol=1e-5)
