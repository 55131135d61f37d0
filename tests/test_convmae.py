"""ConvMAE: masking, shapes, loss, masked-convolution no-leak property, kept-positions computation
equal to the official full-grid one, and official checkpoint keys."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pretrain.checkpoints import CheckpointMismatchError, load_pretrained, load_state_dict_checked
from pretrain.models import build_model
from pretrain.models.conv_stages import GridLayout, KeptLayout, layer_norm_2d
from pretrain.models.masking import gather_tokens
from pretrain.models.vit_common import DECODER_PREFIXES, pos_embed_for_grid

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


def upsample_token_mask(mask: torch.Tensor, grid: tuple[int, int], scale: int) -> torch.Tensor:
    """Nearest upsampling of a token mask [N, h*w] -> [N, 1, h*scale, w*scale]."""
    n, (h, w) = mask.shape[0], grid
    return mask.reshape(n, 1, h, 1, w, 1).expand(n, 1, h, scale, w, scale).reshape(n, 1, h * scale, w * scale)


def official_cblock(blk, x: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
    """Alpha-VL/ConvMAE models_convvit.py ``CBlock.forward`` on the whole map x [N, C, H, W]."""
    y = blk.conv1(layer_norm_2d(blk.norm1, x))
    x = x + blk.drop_path(blk.conv2(blk.attn(y if visible is None else visible * y)))
    return x + blk.drop_path(blk.mlp(layer_norm_2d(blk.norm2, x)))


def official_forward(model, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor):
    """The official computation (models_convmae.py ``forward_encoder`` on the full stage-1/2 grids, any
    grid size) -> (loss, pred, mask), our decoder and loss."""
    n, grid = imgs.shape[0], model.token_grid(imgs)
    ids_keep, ids_restore, mask = model.block_wise_masking(n, grid, mask_ratio, noise, imgs.device)
    x = model.patch_embed1(imgs)
    for blk in model.blocks1:
        x = official_cblock(blk, x, upsample_token_mask(1 - mask, grid, 4))
    stage1_embed = model.stage1_output_decode(x).flatten(2).transpose(1, 2)
    x = model.patch_embed2(x)
    for blk in model.blocks2:
        x = official_cblock(blk, x, upsample_token_mask(1 - mask, grid, 2))
    stage2_embed = model.stage2_output_decode(x).flatten(2).transpose(1, 2)
    x = model.patch_embed4(model.patch_embed3(x).flatten(2).transpose(1, 2))
    x = gather_tokens(x + pos_embed_for_grid(model.pos_embed, grid, model.grid_size, cls_token=False), ids_keep)
    for blk in model.blocks3:
        x = blk(x)
    x = model.norm(x + gather_tokens(stage1_embed, ids_keep) + gather_tokens(stage2_embed, ids_keep))
    pred = model.forward_decoder(x, ids_restore, grid)
    return model.forward_loss(imgs, pred, mask), pred, mask


def loss_pred_grads(model, forward, imgs, noise, ratio=0.75):
    """Seeded forward (drop path draws alike) + backward -> (loss, pred, mask, grads by name)."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    loss, pred, mask = forward(model, imgs, ratio, noise)
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), pred.detach(), mask, grads


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
    with pytest.raises(ValueError, match="noise"):
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
    with pytest.raises(ValueError):
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
    # masked positions are never computed (zero), though the noise there did reach the patch embedding;
    # visible pixels do matter
    assert torch.count_nonzero(f2["stage1"] * (1 - vis1)) == 0 and torch.count_nonzero(f2["stage2"] * (1 - vis2)) == 0
    with torch.no_grad():
        noisy = imgs + 10.0 * torch.randn_like(imgs) * removed_px
        assert not torch.allclose(model.patch_embed1(imgs) * (1 - vis1), model.patch_embed1(noisy) * (1 - vis1))
    assert not torch.allclose(lat1, lat3)


# ---- kept positions only: equal to the official full-grid computation -----------------------------
def test_kept_layout_is_the_official_upsampled_mask():
    """The kept positions of each stage grid are where the official upsampled visible mask is 1."""
    mask = torch.ones(2, 24)
    noise = torch.rand(2, 24)
    ids_keep = noise.argsort(1)[:, :7]
    mask.scatter_(1, ids_keep, 0.0)
    for scale in (4, 2):
        layout = KeptLayout.of(ids_keep, (4, 6), scale)
        ones = torch.ones(2, layout.index.shape[1], 1)
        assert torch.equal(layout.to_map(ones), upsample_token_mask(1 - mask, (4, 6), scale))
        assert torch.equal(layout.from_map(layout.to_map(ones)), ones)


@pytest.mark.parametrize("ratio, size", [(0.75, (64, 96)), (0.5, (64, 64)), (0.25, (48, 64))])
def test_kept_positions_equal_official_full_grid(ratio, size):
    """Loss, predictions and every gradient equal the official full-grid computation, drop path on."""
    model = tiny(drop_path_rate=0.2, norm_pix_loss=True).train()
    imgs = torch.randn(2, 3, *size)
    noise = torch.rand(2, size[0] * size[1] // 256)
    ours = loss_pred_grads(model, lambda m, *a: m(*a[:1], a[1], noise=a[2]), imgs, noise, ratio)
    ref = loss_pred_grads(model, official_forward, imgs, noise, ratio)
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours[1], ref[1], rtol=1e-5, atol=1e-5)
    assert torch.equal(ours[2], ref[2]) and ours[3].keys() == ref[3].keys()
    for k in ref[3]:
        torch.testing.assert_close(ours[3][k], ref[3][k], rtol=1e-4, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("batch", [1, 2])
def test_kept_positions_equal_official_at_base_shape(batch):
    """ConvMAE-B widths (256/384/768, 12 heads) with fewer blocks, 224 px."""
    torch.manual_seed(0)
    model = build_model("convmae_base", depths=(2, 1, 1), decoder_depth=1).train()
    imgs, noise = torch.randn(batch, 3, 224, 224), torch.rand(batch, 196)
    ours = loss_pred_grads(model, lambda m, *a: m(*a[:1], a[1], noise=a[2]), imgs, noise)
    ref = loss_pred_grads(model, official_forward, imgs, noise)
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours[1], ref[1], rtol=1e-4, atol=1e-5)
    for k in ref[3]:
        torch.testing.assert_close(ours[3][k], ref[3][k], rtol=1e-3, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")


def test_conv_block_on_the_full_grid_equals_official():
    """The backbone's path: every position, no mask (official ``CBlock`` with mask None)."""
    model = tiny(drop_path_rate=0.0)
    blk = model.blocks1[0]
    x = torch.randn(2, 32, 6, 10)
    layout = GridLayout(6, 10)
    with torch.no_grad():
        torch.testing.assert_close(layout.to_map(blk(layout.from_map(x), layout)), official_cblock(blk, x, None))


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
    with pytest.raises(CheckpointMismatchError, match=r"patch_embed1\.proj\.weight"):  # what the model lacks
        load_pretrained(base, mae_like, name="mae.pth")
    with pytest.raises(CheckpointMismatchError, match="patch_embed1.proj.weight"):
        load_pretrained(base, tiny().state_dict(), name="tiny")
