"""MAE: masking, loss on removed patches only, patchify, position embedding, checkpoint loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pretrain.models import build_model
from pretrain.checkpoints import CheckpointMismatchError, load_pretrained
from pretrain.models.pos_embed import get_2d_sincos_pos_embed
from pretrain.models.reconstruction import patchify, reconstruction_loss, unpatchify


def tiny(**kw):
    torch.manual_seed(0)
    return build_model("mae_vit_tiny", **kw).eval()


def official_sincos(embed_dim: int, grid_size: int) -> np.ndarray:
    """facebookresearch/mae util/pos_embed.py get_2d_sincos_pos_embed (numpy), as a reference."""
    grid = np.stack(np.meshgrid(np.arange(grid_size, dtype=np.float32), np.arange(grid_size, dtype=np.float32)))
    grid = grid.reshape(2, 1, grid_size, grid_size)

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)


# ---- masking ------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.75, 0.6, 0.5, 0.0])
def test_visible_count(ratio):
    model = tiny()
    imgs = torch.randn(2, 3, 64, 96)  # 4 x 6 = 24 tokens
    with torch.no_grad():
        latent, mask, ids_restore = model.forward_encoder(imgs, ratio)
    keep = int(24 * (1 - ratio))
    assert latent.shape == (2, 1 + keep, 96)  # cls + visible
    assert mask.shape == ids_restore.shape == (2, 24)
    assert (mask.sum(1) == 24 - keep).all()


def test_noise_decides_mask():
    model = tiny()
    imgs = torch.randn(2, 3, 64, 64)
    noise = torch.rand(2, 16)
    with torch.no_grad():
        loss1, pred1, mask1 = model(imgs, 0.75, noise=noise)
        loss2, pred2, mask2 = model(imgs, 0.75, noise=noise.clone())
    assert torch.equal(mask1, mask2) and torch.equal(pred1, pred2) and torch.equal(loss1, loss2)
    # the kept tokens are the int(L * 0.25) = 4 smallest noise values
    kept = torch.zeros_like(mask1)
    kept.scatter_(1, noise.argsort(1)[:, :4], 1.0)
    assert torch.equal(mask1, 1 - kept)


def test_position_embeddings_are_fixed():
    """Shapes and gradients of every encoder: test_encoder_contract.py. MAE's sin-cos tables are not trained."""
    model = tiny()
    assert not model.pos_embed.requires_grad and not model.decoder_pos_embed.requires_grad


def test_encoder_mask_tokens_ablation():
    model = tiny(encoder_mask_tokens=True)
    imgs = torch.randn(2, 3, 64, 64)
    noise = torch.rand(2, 16)
    with torch.no_grad():
        latent, mask, _ = model.forward_encoder(imgs, 0.75, noise)
        loss, pred, mask2 = model(imgs, 0.75, noise)
    assert latent.shape == (2, 17, 96)  # all tokens go through the encoder
    assert torch.equal(mask, mask2) and pred.shape == (2, 16, 768) and torch.isfinite(loss)
    assert "encoder_mask_token" in model.state_dict()
    assert "encoder_mask_token" not in tiny().state_dict()  # default keeps the official keys


def official_forward(model, imgs, mask_ratio, noise):
    """facebookresearch/mae models_mae.py forward (random_masking fed our noise), inline reference."""
    x = model.patch_embed(imgs) + model.pos_embed[:, 1:, :]
    n, length, d = x.shape
    len_keep = int(length * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    x = torch.gather(x, 1, ids_shuffle[:, :len_keep].unsqueeze(-1).repeat(1, 1, d))
    mask = torch.ones(n, length)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    x = torch.cat([(model.cls_token + model.pos_embed[:, :1, :]).expand(n, -1, -1), x], dim=1)
    for blk in model.blocks:
        x = blk(x)
    x = model.decoder_embed(model.norm(x))
    mask_tokens = model.mask_token.repeat(n, ids_restore.shape[1] + 1 - x.shape[1], 1)
    x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
    x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
    x = torch.cat([x[:, :1, :], x_], dim=1) + model.decoder_pos_embed
    for blk in model.decoder_blocks:
        x = blk(x)
    pred = model.decoder_pred(model.decoder_norm(x))[:, 1:, :]
    return pred, mask


def test_forward_equals_official_algorithm():
    model = tiny()
    imgs, noise = torch.randn(2, 3, 64, 64), torch.rand(2, 16)
    with torch.no_grad():
        _, pred, mask = model(imgs, 0.75, noise)
        ref_pred, ref_mask = official_forward(model, imgs, 0.75, noise)
    assert torch.equal(mask, ref_mask)
    torch.testing.assert_close(pred, ref_pred)


# ---- loss ---------------------------------------------------------------------------------------
def test_loss_only_on_removed_patches():
    model = tiny()
    imgs = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        loss, pred, mask = model(imgs, 0.75, noise=torch.rand(2, 16))
    changed = pred + 10.0 * (1 - mask).unsqueeze(-1)  # change predictions at visible patches only
    assert torch.equal(model.forward_loss(imgs, changed, mask), loss)
    changed = pred + 10.0 * mask.unsqueeze(-1)
    assert not torch.allclose(model.forward_loss(imgs, changed, mask), loss)


def test_loss_formula():
    imgs = 0.5 + 0.2 * torch.randn(2, 3, 32, 32)  # pixel-like: not already normalised
    pred = torch.randn(2, 4, 16 * 16 * 3)
    mask = torch.tensor([[1.0, 0, 1, 1], [0, 1, 0, 1]])
    target = patchify(imgs, 16)
    per_patch = ((pred - target) ** 2).mean(-1)
    assert torch.allclose(reconstruction_loss(imgs, pred, mask, 16, False), (per_patch * mask).sum() / mask.sum())
    # norm_pix_loss: the target is each patch normalised by its mean and (unbiased) variance
    normed = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    assert reconstruction_loss(imgs, normed, mask, 16, True) < 1e-10
    assert reconstruction_loss(imgs, target, mask, 16, True) > 0.1
    model = tiny(norm_pix_loss=True)
    assert model.forward_loss(imgs, normed, mask) < 1e-10


def test_patchify_roundtrip():
    x = torch.randn(2, 24, 16 * 16 * 3)
    assert torch.equal(patchify(unpatchify(x, 16, (4, 6)), 16), x)
    imgs = torch.randn(2, 3, 64, 64)
    model = tiny()
    assert torch.equal(model.unpatchify(model.patchify(imgs)), imgs)
    # official channel order: patch (h, w) holds pixels [p, q, c] flattened
    p = model.patchify(imgs)
    assert torch.equal(p[1, 1 * 4 + 2].reshape(16, 16, 3), imgs[1, :, 16:32, 32:48].permute(1, 2, 0))


# ---- position embedding -------------------------------------------------------------------------
def test_pos_embed_matches_official_formula():
    model = tiny()
    ref = official_sincos(96, 4)
    assert torch.allclose(model.pos_embed[0, 1:], torch.from_numpy(ref).float(), atol=1e-6)
    assert torch.equal(model.pos_embed[0, 0], torch.zeros(96))
    ref = official_sincos(64, 4)
    assert torch.allclose(model.decoder_pos_embed[0, 1:], torch.from_numpy(ref).float(), atol=1e-6)


def test_other_image_size_uses_its_grid():
    model = tiny()  # built for 64x64
    imgs = torch.randn(1, 3, 48, 80)  # 3 x 5 grid
    noise = torch.rand(1, 15)
    with torch.no_grad():
        loss, pred, mask = model(imgs, 0.6, noise)
    assert pred.shape == (1, 15, 768) and torch.isfinite(loss)
    assert model.unpatchify(pred, (3, 5)).shape == imgs.shape
    # equals running the same weights built for that size
    other = build_model("mae_vit_tiny", img_size=(48, 80)).eval()
    other.load_state_dict({k: v for k, v in model.state_dict().items() if "pos_embed" not in k}, strict=False)
    assert torch.allclose(other.pos_embed[0], get_2d_sincos_pos_embed(96, (3, 5), cls_token=True))
    with torch.no_grad():
        loss2, pred2, _ = other(imgs, 0.6, noise)
    assert torch.allclose(pred, pred2, atol=1e-6)


# ---- checkpoints --------------------------------------------------------------------------------
def test_encoder_state_dict_holds_the_official_encoder_keys():
    """Its round trip through a file: test_encoder_contract.py."""
    enc = tiny().encoder_state_dict()
    assert not any(k.startswith("decoder") or k == "mask_token" for k in enc)
    assert {"cls_token", "pos_embed", "norm.weight", "patch_embed.proj.weight"} <= set(enc)


def test_wrong_checkpoint_names_keys():
    model = tiny()
    other = build_model("mae_vit_tiny", embed_dim=64, num_heads=2, depth=3)
    with pytest.raises(CheckpointMismatchError, match=r"blocks\.[02]\."):
        load_pretrained(model, other.encoder_state_dict(), name="other")
    enc = model.encoder_state_dict()
    del enc["blocks.1.mlp.fc2.bias"]
    with pytest.raises(CheckpointMismatchError, match=r"blocks\.1\.mlp\.fc2\.bias"):
        load_pretrained(model, enc)
