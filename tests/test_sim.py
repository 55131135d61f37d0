"""SIM: block-wise mask, relative position embedding, EMA, UniGrad loss, forward/backward."""
from __future__ import annotations

import random

import pytest
import torch

from pretrain.models import build_model
from pretrain.checkpoints import load_pretrained
from pretrain.models.pos_embed import get_2d_sincos_pos_embed, sincos_2d_from_coords
from pretrain.models.sim import unigrad_loss
from pretrain.models.sim.geometry import RelativeCrop, relative_crop, relative_pos_embed
from pretrain.models.sim.masking import block_wise_mask, visible_indices


def tiny(**kw):
    torch.manual_seed(0)
    return build_model("sim_vit_tiny", **kw)


def inputs(n=2, num_masked=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x1, x2 = torch.randn(n, 3, 64, 64, generator=g), torch.randn(n, 3, 64, 64, generator=g)
    boxes1 = torch.tensor([[10.0, 20.0, 100.0, 120.0]] * n)
    boxes2 = torch.tensor([[30.0, 5.0, 80.0, 150.0]] * n)
    rel = relative_crop(boxes1, boxes2, torch.tensor([False, True][:n]), torch.zeros(n, dtype=torch.bool),
                        torch.full((n,), 200.0))
    rng = random.Random(seed)
    mask = torch.stack([block_wise_mask(4, num_masked, min_num_patches=2, rng=rng) for _ in range(n)])
    return x1, x2, rel, mask


# ---- block-wise mask ----------------------------------------------------------------------------
@pytest.mark.parametrize("grid,count", [(14, 118), (14, 75), (14, 0), (14, 196), (4, 6), ((6, 9), 20)])
def test_block_wise_mask_exact_count(grid, count):
    rng = random.Random(0)
    for _ in range(20):
        m = block_wise_mask(grid, count, rng=rng)
        assert m.dtype == torch.bool and m.shape == ((grid, grid) if isinstance(grid, int) else grid)
        assert int(m.sum()) == count


def test_block_wise_mask_reproducible_and_blocky():
    a = block_wise_mask(14, 118, rng=random.Random(3))
    assert torch.equal(a, block_wise_mask(14, 118, rng=random.Random(3)))
    # blocks, not salt-and-pepper: most masked patches have a masked 4-neighbour
    pad = torch.nn.functional.pad(a.float()[None, None], (1, 1, 1, 1))[0, 0]
    neigh = pad[:-2, 1:-1] + pad[2:, 1:-1] + pad[1:-1, :-2] + pad[1:-1, 2:]
    assert ((neigh > 0) & a).sum() >= 0.9 * a.sum()


def test_visible_indices_equal_boolean_indexing():
    mask = torch.stack([block_wise_mask(4, 6, min_num_patches=2, rng=random.Random(i)) for i in range(3)]).flatten(1)
    x = torch.randn(3, 16, 5)
    ids = visible_indices(mask, 6)
    official = x[~mask].view(3, -1, 5)
    assert torch.equal(torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, 5)), official)


# ---- relative position embedding ----------------------------------------------------------------
def test_relative_pos_of_identical_crops_is_plain_pos_embed():
    d, g = 32, 4
    boxes = torch.tensor([[3.0, 7.0, 50.0, 60.0], [0.0, 0.0, 10.0, 10.0]])
    rel = relative_crop(boxes, boxes)
    emb = relative_pos_embed(rel, g, d)  # [2, 16, 2d]
    plain = get_2d_sincos_pos_embed(d, g)  # [16, d], channels [column | row]
    swapped = torch.cat([plain[:, d // 2 :], plain[:, : d // 2]], dim=1)  # official relative: [row | column]
    for i in range(2):
        assert torch.allclose(emb[i, :, :d], swapped, atol=1e-6)
        # scale change log(1) = 0: sin 0 = 0, cos 0 = 1 for both h and w
        q = d // 4
        scale = torch.cat([torch.zeros(q), torch.ones(q)] * 2)
        assert torch.allclose(emb[i, :, d:], scale.expand(16, -1), atol=1e-6)


def test_relative_pos_sub_crop_and_flip_geometry():
    d, g = 16, 4
    w_img = 64.0
    box1 = torch.tensor([[0.0, 0.0, 64.0, 64.0]])
    # view 2 = the central half of view 1: its patch centres sit at 1 + 0.5 * (r + 0.5) - 0.5
    box2 = torch.tensor([[16.0, 16.0, 32.0, 32.0]])
    emb = relative_pos_embed(relative_crop(box1, box2), g, d)[0]
    r = torch.arange(4.0).repeat_interleave(4)
    c = torch.arange(4.0).repeat(4)
    rows, cols = 0.5 * (r + 0.5) + 0.5, 0.5 * (c + 0.5) + 0.5
    expect = sincos_2d_from_coords(d, cols, rows)  # helper puts its 2nd argument first: [row | col]
    assert torch.allclose(emb[:, :d], expect, atol=1e-6)
    # view 2 = view 1 mirrored: column c of view 2 is column g - 1 - c of view 1
    flips2 = torch.tensor([True])
    emb = relative_pos_embed(relative_crop(box1, box1, torch.tensor([False]), flips2, torch.tensor([w_img])), g, d)[0]
    expect = sincos_2d_from_coords(d, 3 - c, r)
    assert torch.allclose(emb[:, :d], expect, atol=1e-6)


def test_relative_pos_matches_official_formula():
    """OpenGVLab/Siamese-Image-Modeling util/pos_embed.py get_2d_sincos_pos_embed_relative, inline."""
    d, g = 32, 4
    _, _, rel, _ = inputs()
    di, dj, dh, dw, flip, fdj = rel
    di, dj, fdj = di * g, dj * g, fdj * g
    hh, ww = torch.meshgrid(torch.arange(g, dtype=torch.float32) + 0.5, torch.arange(g, dtype=torch.float32) + 0.5,
                            indexing="ij")
    gh = torch.einsum("b,n->bn", dh, hh.flatten()) + di[:, None]
    gw = torch.einsum("b,n->bn", dw, ww.flatten()) + dj[:, None]
    fgw = -torch.einsum("b,n->bn", dw, ww.flatten()) + fdj[:, None]
    f = flip.float()[:, None]
    gw = f * fgw + (1 - f) * gw - 0.5
    gh = gh - 0.5
    omega = 1.0 / 10000 ** (torch.arange(d // 4, dtype=torch.float32) / (d / 4))
    oh, ow = gh[..., None] * omega, gw[..., None] * omega
    sh = (10 * torch.log(dh))[:, None, None] * omega
    sw = (10 * torch.log(dw))[:, None, None] * omega
    sh, sw = sh.expand_as(oh), sw.expand_as(oh)
    ref = torch.cat([oh.sin(), oh.cos(), ow.sin(), ow.cos(), sh.sin(), sh.cos(), sw.sin(), sw.cos()], dim=2)
    assert torch.allclose(relative_pos_embed(rel, g, d), ref, atol=1e-5)
    assert torch.allclose(relative_pos_embed(tuple(rel), g, d), ref, atol=1e-5)  # official 6-tuple works too


# ---- momentum branch ----------------------------------------------------------------------------
def test_momentum_branch_starts_as_copy_and_is_frozen():
    model = tiny()
    sd = model.state_dict()
    for k, v in sd.items():
        if k.startswith("mm_"):
            assert torch.equal(v, sd[k[3:]]), k
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("mm_"))
    assert not model.patch_embed.proj.weight.requires_grad  # official default: frozen patch projection


def test_ema_formula_exact():
    model = tiny()
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.add_(torch.randn_like(p))  # online and momentum now differ
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m = 0.9
    model.update_momentum(m)
    after = model.state_dict()
    pairs = {"mm_cls_token": "cls_token", "mm_mask_token": "mask_token"}
    updated = 0
    for k in after:
        if k.startswith("mm_") and "running_" not in k and "num_batches" not in k:
            online = pairs.get(k, k[3:])
            expect = before[k] * m + before[online] * (1 - m)
            torch.testing.assert_close(after[k], expect, rtol=1e-6, atol=1e-7)
            updated += 1
        else:  # online weights and BatchNorm statistics are untouched
            assert torch.equal(after[k], before[k]), k
    assert updated == sum(1 for n, _ in model.named_parameters() if n.startswith("mm_"))


# ---- loss ---------------------------------------------------------------------------------------
def test_unigrad_equals_definition():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 5, 8, generator=g, requires_grad=True)
    target = torch.randn(3, 5, 8, generator=g, requires_grad=True)
    w = 0.02
    loss = unigrad_loss(pred, target, w)
    p, t = pred.detach().reshape(15, 8).double(), target.detach().reshape(15, 8).double()
    pos = sum(((p[i] - t[i]) ** 2).sum() for i in range(15)) / 15
    corr = sum(torch.outer(t[i], t[i]) for i in range(15)) / 15
    neg = torch.diagonal(p @ corr @ p.T).mean()
    assert torch.allclose(loss.double(), (pos + w * neg) / 8, rtol=1e-5)
    loss.backward()
    assert target.grad is None and pred.grad is not None  # the target is a constant


# ---- forward ------------------------------------------------------------------------------------
def test_forward_backward_and_momentum_update():
    model = tiny().train()
    x1, x2, rel, mask = inputs()
    mm_before = model.mm_blocks[0].attn.qkv.weight.clone()
    loss, out = model(x1, x2, rel, 0.99, True, mask=mask)
    assert loss.ndim == 0 and torch.isfinite(loss) and torch.equal(out["loss_sim"], loss.detach())
    loss.backward()
    for name in ("blocks.0.attn.qkv.weight", "decoder_pos_mlp.weight", "mask_token", "cls_token",
                 "predictor_decoder_blocks.0.mlp.fc1.weight", "decoder_pred.weight",
                 "projector_decoder_blocks.0.norm1.bn.weight"):
        assert dict(model.named_parameters())[name].grad is not None, name
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith("mm_") or "patch_embed" in n)
    # the EMA ran (online == momentum at init, so apply a step and update again)
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    model(x1, x2, rel, 0.5, True, mask=mask)
    assert not torch.equal(model.mm_blocks[0].attn.qkv.weight, mm_before)


def test_forward_num_masked_and_mask_layout():
    model = tiny().eval()
    x1, x2, rel, mask = inputs()
    with torch.no_grad():
        a, _ = model(x1, x2, rel, 0.99, False, mask=mask)
        b, _ = model(x1, x2, rel, 0.99, False, mask=mask.flatten(1), num_masked=6)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="mask"):
        model(x1, x2, rel, 0.99, False)


def test_prediction_depends_only_on_visible_view1_patches():
    model = tiny().eval()
    x1, x2, rel, mask = inputs(n=1)
    with torch.no_grad():
        ids = visible_indices(mask.flatten(1), 6)
        z = model.forward_online(x1, ids)
        m = mask[0].repeat_interleave(16, 0).repeat_interleave(16, 1)  # pixel mask [64, 64]
        x1b = torch.where(m, torch.randn_like(x1), x1)  # change masked pixels only
        assert torch.allclose(model.forward_online(x1b, ids), z, atol=1e-6)
        assert isinstance(rel, RelativeCrop)


def test_encoder_only_load():
    src, dst = tiny(), build_model("sim_vit_tiny")
    enc = src.encoder_state_dict()
    assert set(enc) == {k for k in src.state_dict() if k in ("cls_token", "pos_embed") or k.startswith(("patch_embed.", "blocks."))}
    missing = load_pretrained(dst, enc)
    # (BatchNorm fills a missing num_batches_tracked itself, so it is not reported)
    assert set(missing) == {k for k in dst.state_dict() if k not in enc and "num_batches_tracked" not in k}


def test_permute_bn_equals_official_layout():
    """Our flat [N*L, C] BatchNorm equals the official BatchNorm1d on [N, C, L], incl. running stats."""
    from pretrain.models.sim import PermuteBN

    ours, ref = PermuteBN(8), torch.nn.BatchNorm1d(8)
    x = torch.randn(3, 5, 8) * 2 + 1
    torch.testing.assert_close(ours(x), ref(x.permute(0, 2, 1)).permute(0, 2, 1))
    torch.testing.assert_close(ours.bn.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.bn.running_var, ref.running_var)
