"""ConvMAE: masking, shapes, loss, masked-convolution no-leak property and official checkpoint keys."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pretrain.models import build_model
from pretrain.models.checkpoint import (
    DECODER_PREFIXES,
    CheckpointMismatchError,
    load_pretrained,
    load_state_dict_checked,
)
from pretrain.models.convmae import upsample_token_mask
from pretrain.models.vit_common import pos_embed_for_grid

OFFICIAL_KEYS = Path(__file__).parent / "data" / "official_keys" / "convmae_base.json"


def tiny(**kw):
    torch.manual_seed(0)
    return build_model("convmae_tiny", **kw).eval()


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return build_model("convmae_base").eval()


@pytest.fixture(scope="module")
def official():
    return json.loads(OFFICIAL_KEYS.read_text())


def random_official_state_dict(official) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {k: torch.randn(*shape, generator=g) for k, shape in official["keys"].items()}


# ---- geometry -----------------------------------------------------------------------------------
def test_upsample_token_mask_matches_official_formula():
    mask = (torch.rand(2, 3 * 5) > 0.5).float()
    # official (hard-wired 14x14 there): reshape, repeat s*s, reshape (h, w, s, s), permute, reshape
    s = 4
    ref = mask.reshape(-1, 3, 5).unsqueeze(-1).repeat(1, 1, 1, s * s).reshape(-1, 3, 5, s, s)
    ref = ref.permute(0, 1, 3, 2, 4).reshape(2, 3 * s, 5 * s).unsqueeze(1)
    assert torch.equal(upsample_token_mask(mask, (3, 5), s), ref)


# ---- masking and forward ------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.75, 0.6, 0.0])
def test_visible_count(ratio):
    model = tiny()
    imgs = torch.randn(2, 3, 64, 96)  # 4 x 6 = 24 stage-3 tokens
    with torch.no_grad():
        latent, mask, ids_restore = model.forward_encoder(imgs, ratio)
    keep = int(24 * (1 - ratio))
    assert latent.shape == (2, keep, 64)
    assert mask.shape == ids_restore.shape == (2, 24)
    assert (mask.sum(1) == 24 - keep).all()


def test_same_noise_same_mask():
    model = tiny()
    imgs = torch.randn(2, 3, 64, 64)
    noise = torch.rand(2, 16)
    with torch.no_grad():
        loss1, pred1, mask1 = model(imgs, 0.75, noise=noise)
        loss2, pred2, mask2 = model(imgs, 0.75, noise=noise)
    assert torch.equal(mask1, mask2) and torch.equal(pred1, pred2) and loss1 == loss2
    # argsort ascending: the 4 smallest noise values are kept
    kept = torch.zeros(2, 16)
    kept.scatter_(1, noise.argsort(1)[:, :4], 1.0)
    assert torch.equal(mask1, 1 - kept)


def test_noise_shape_is_checked():
    with pytest.raises(ValueError, match="noise must have shape"):
        tiny()(torch.randn(1, 3, 64, 64), noise=torch.rand(1, 15))


def test_loss_only_on_removed_patches():
    model = tiny(norm_pix_loss=True)
    imgs = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        loss, pred, mask = model(imgs, 0.5, noise=torch.rand(2, 16))
        moved_visible = pred + 100.0 * (1 - mask).unsqueeze(-1)
        moved_removed = pred + 1.0 * mask.unsqueeze(-1)
        assert torch.allclose(model.forward_loss(imgs, moved_visible, mask), loss)
        assert not torch.allclose(model.forward_loss(imgs, moved_removed, mask), loss)
        target = model.patchify(imgs)
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
        ref = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
        assert torch.allclose(loss, ref)


@pytest.mark.parametrize("size", [(224, 224), (160, 224)])
def test_output_shapes(size):
    model = tiny()
    h, w = size
    imgs = torch.randn(2, 3, h, w)
    grid = (h // 16, w // 16)
    with torch.no_grad():
        loss, pred, mask = model(imgs)
        _, _, _, feats = model.forward_encoder(imgs, 0.75, return_features=True)
    length = grid[0] * grid[1]
    assert pred.shape == (2, length, 16 * 16 * 3) and mask.shape == (2, length)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert model.unpatchify(pred, grid).shape == imgs.shape
    assert torch.equal(model.unpatchify(model.patchify(imgs), grid), imgs)
    assert feats["stage1"].shape == (2, 32, h // 4, w // 4)
    assert feats["stage2"].shape == (2, 48, h // 8, w // 8)
    assert feats["stage3"].shape == (2, int(length * 0.25), 64)


def test_bad_input_size():
    with pytest.raises(ValueError, match="not divisible"):
        tiny()(torch.randn(1, 3, 64, 72))


def test_pos_embed_recomputed_for_other_grid_matches_construction():
    """A model built for 96x64 stores the sin-cos table that a 224 model recomputes for 96x64."""
    small = tiny(img_size=(96, 64))
    model = tiny()
    table = pos_embed_for_grid(model.pos_embed, (6, 4), model.grid_size, cls_token=False)
    assert small.pos_embed.shape == (1, 24, 64) and torch.equal(table, small.pos_embed)


# ---- masked convolution: nothing leaks from masked to visible regions -----------------------------
def test_no_leak_from_masked_regions():
    model = tiny()
    imgs = torch.randn(2, 3, 64, 96)
    noise = torch.rand(2, 24)
    with torch.no_grad():
        lat1, mask, _, f1 = model.forward_encoder(imgs, 0.5, noise, return_features=True)
        removed_px = upsample_token_mask(mask, (4, 6), 16)  # [N, 1, H, W], 1 inside removed patches
        lat2, mask2, _, f2 = model.forward_encoder(
            imgs + 10.0 * torch.randn_like(imgs) * removed_px, 0.5, noise, return_features=True
        )
        visible_px = 1 - removed_px
        lat3, _, _, _ = model.forward_encoder(
            imgs + torch.randn_like(imgs) * visible_px, 0.5, noise, return_features=True
        )
    assert torch.equal(mask, mask2)
    vis1 = upsample_token_mask(1 - mask, (4, 6), 4)
    vis2 = upsample_token_mask(1 - mask, (4, 6), 2)
    torch.testing.assert_close(f1["stage1"] * vis1, f2["stage1"] * vis1, atol=1e-6, rtol=0)
    torch.testing.assert_close(f1["stage2"] * vis2, f2["stage2"] * vis2, atol=1e-6, rtol=0)
    torch.testing.assert_close(f1["stage3"], f2["stage3"], atol=1e-6, rtol=0)
    torch.testing.assert_close(lat1, lat2, atol=1e-6, rtol=0)
    # the property is not vacuous: masked features did change, and visible pixels do matter
    assert not torch.allclose(f1["stage1"] * (1 - vis1), f2["stage1"] * (1 - vis1))
    assert not torch.allclose(lat1, lat3)


# ---- training-time features ---------------------------------------------------------------------
def test_backward_and_grad_checkpointing_agree():
    imgs = torch.randn(2, 3, 64, 64)
    noise = torch.rand(2, 16)
    grads = []
    for ckpt in (False, True):
        model = tiny().train()
        model.set_grad_checkpointing(ckpt)
        loss, _, _ = model(imgs, 0.75, noise=noise)
        loss.backward()
        assert model.pos_embed.grad is None and model.decoder_pos_embed.grad is None
        grads.append(model.blocks1[0].attn.weight.grad.clone())
    assert torch.isfinite(grads[0]).all() and grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1])


# ---- official parameters and checkpoints --------------------------------------------------------
def test_official_keys_and_shapes(base, official):
    ours = {k: list(v.shape) for k, v in base.state_dict().items()}
    assert ours == official["keys"]
    assert sum(p.numel() for p in base.parameters()) == official["num_params"]


def test_strict_load_of_official_state_dict(base, official):
    sd = random_official_state_dict(official)
    base.load_state_dict(sd, strict=True)
    assert torch.equal(base.blocks3[10].attn.qkv.weight, sd["blocks3.10.attn.qkv.weight"])
    assert load_state_dict_checked(base, sd) == []


def test_encoder_only_load(base, official):
    sd = {k: v for k, v in random_official_state_dict(official).items() if not k.startswith(DECODER_PREFIXES)}
    missing = load_pretrained(base, sd, name="encoder-only")
    assert missing and all(k.startswith(DECODER_PREFIXES) for k in missing)
    assert torch.equal(base.patch_embed1.proj.weight, sd["patch_embed1.proj.weight"])
    with pytest.raises(CheckpointMismatchError, match="missing"):
        load_state_dict_checked(base, sd)  # without the allowance the decoder keys are reported


def test_wrong_architecture_fails_naming_keys(base):
    mae_like = {
        "cls_token": torch.zeros(1, 1, 768),
        "pos_embed": torch.zeros(1, 197, 768),
        "patch_embed.proj.weight": torch.zeros(768, 3, 16, 16),
        "blocks.0.norm1.weight": torch.zeros(768),
    }
    with pytest.raises(CheckpointMismatchError) as err:
        load_pretrained(base, mae_like, name="mae.pth")
    msg = str(err.value)
    assert "mae.pth" in msg and "pos_embed" in msg and "cls_token" in msg and "patch_embed1.proj.weight" in msg
    with pytest.raises(CheckpointMismatchError, match="patch_embed1.proj.weight"):
        load_pretrained(base, tiny().state_dict(), name="tiny")
