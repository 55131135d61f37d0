"""Classification models: official parameter names (strict loads), logits equal to the official
forward re-expressed here from facebookresearch/mae models_vit.py, OpenGVLab/Siamese-Image-Modeling
models_vit.py and Alpha-VL/ConvMAE models_convvit.py / vision_transformer.py, and the loading of
pretraining and fine-tuned files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pretrain.checkpoints import CheckpointError, CheckpointMismatchError
from pretrain.models import build_model
from transfer.cls.models import build_classifier, cls_token_features
from transfer.cls.weights import load_classifier_weights, load_finetuned

KEYS = Path(__file__).parent / "data" / "official_keys"


# ---- the official forward, re-expressed on a state dict ----------------------------------------------
def ln(x, sd, p, eps):
    return F.layer_norm(x, x.shape[-1:], sd[p + "weight"], sd[p + "bias"], eps)


def official_vit_block(x, sd, p, heads):
    """timm 0.3.2 / SIM Block: x + attn(norm1(x)); x + mlp(norm2(x)) (softmax attention, eps 1e-6)."""
    b, n, c = x.shape
    qkv = F.linear(ln(x, sd, p + "norm1.", 1e-6), sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
    q, k, v = qkv.reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = ((q * (c // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
    x = x + F.linear((attn @ v).transpose(1, 2).reshape(b, n, c), sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
    h = F.gelu(F.linear(ln(x, sd, p + "norm2.", 1e-6), sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]))
    return x + F.linear(h, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])


def official_vit_logits(sd, x, depth, heads, patch, global_pool=True):
    """models_vit.VisionTransformer.forward_features + head."""
    x = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch).flatten(2).transpose(1, 2)
    x = torch.cat([sd["cls_token"].expand(x.shape[0], -1, -1), x], 1) + sd["pos_embed"]
    for i in range(depth):
        x = official_vit_block(x, sd, f"blocks.{i}.", heads)
    feat = ln(x[:, 1:].mean(1), sd, "fc_norm.", 1e-6) if global_pool else ln(x, sd, "norm.", 1e-6)[:, 0]
    return F.linear(feat, sd["head.weight"], sd["head.bias"])


def official_cblock(x, sd, p):
    """ConvMAE vision_transformer.CBlock without mask (LayerNorm eps 1e-5 over channels)."""
    chan_ln = lambda y, q: ln(y.permute(0, 2, 3, 1), sd, q, 1e-5).permute(0, 3, 1, 2)  # noqa: E731
    y = F.conv2d(chan_ln(x, p + "norm1."), sd[p + "conv1.weight"], sd[p + "conv1.bias"])
    y = F.conv2d(y, sd[p + "attn.weight"], sd[p + "attn.bias"], padding=2, groups=y.shape[1])
    x = x + F.conv2d(y, sd[p + "conv2.weight"], sd[p + "conv2.bias"])
    h = F.gelu(F.conv2d(chan_ln(x, p + "norm2."), sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]))
    return x + F.conv2d(h, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])


def official_convvit_logits(sd, x, depths, heads, global_pool=True):
    """models_convvit.ConvViT.forward_features + head."""
    def embed(y, s, stride):
        y = F.conv2d(y, sd[f"patch_embed{s}.proj.weight"], sd[f"patch_embed{s}.proj.bias"], stride=stride)
        return F.gelu(ln(y.permute(0, 2, 3, 1), sd, f"patch_embed{s}.norm.", 1e-5).permute(0, 3, 1, 2))

    x = embed(x, 1, 4)
    for i in range(depths[0]):
        x = official_cblock(x, sd, f"blocks1.{i}.")
    x = embed(x, 2, 2)
    for i in range(depths[1]):
        x = official_cblock(x, sd, f"blocks2.{i}.")
    x = embed(x, 3, 2).flatten(2).permute(0, 2, 1)
    x = F.linear(x, sd["patch_embed4.weight"], sd["patch_embed4.bias"]) + sd["pos_embed"]
    for i in range(depths[2]):
        x = official_vit_block(x, sd, f"blocks3.{i}.", heads)
    feat = ln(x.mean(1), sd, "fc_norm.", 1e-6) if global_pool else ln(x, sd, "norm.", 1e-6)[:, 0]
    return F.linear(feat, sd["head.weight"], sd["head.bias"])


def random_state_dict(shapes: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of the given shapes, scaled so that deep stacks stay finite; norms near 1."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        t = torch.randn(*shape, generator=g)
        out[k] = 1 + 0.1 * t if k.endswith("norm.weight") or ".norm1.weight" in k or ".norm2.weight" in k else 0.05 * t
    return out


def meta_model(name: str, **kw):
    with torch.device("meta"):
        return build_classifier(name, **kw)


def official_keys(file: str) -> dict:
    return json.loads((KEYS / file).read_text())


# ---- names ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,file", [("mae_vit_base", "models_vit_vit_base_patch16_finetune.json"),
                                       ("sim_vit_base", "models_vit_vit_base_patch16_finetune.json"),
                                       ("convmae_base", "models_convvit_convvit_base_patch16_finetune.json")])
def test_keys_equal_official_finetune_model(name, file):
    ref = official_keys(file)
    model = meta_model(name, num_classes=1000)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == ref["keys"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]


def test_official_finetuned_file_loads_strictly_with_its_values():
    ref = official_keys("models_vit_vit_base_patch16_finetune.json")["keys"]
    sd = {k: torch.full(shape, float(i)) for i, (k, shape) in enumerate(ref.items())}
    model = meta_model("mae_vit_base", num_classes=1000)
    model.load_state_dict(sd, strict=True, assign=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())


# ---- logits against the official forward -------------------------------------------------------------------
@pytest.mark.parametrize("name,global_pool", [("mae_vit_tiny", True), ("mae_vit_tiny", False),
                                              ("sim_vit_tiny", True), ("mae_vit_base", True), ("sim_vit_base", True)])
def test_vit_logits_equal_official(name, global_pool, one_thread):
    model = meta_model(name, num_classes=7, global_pool=global_pool, img_size=32)  # 2 x 2 patches
    sd = random_state_dict({k: v.shape for k, v in model.state_dict().items()})
    model.load_state_dict(sd, strict=True, assign=True)
    model.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    heads = model.blocks[0].attn.num_heads
    with torch.no_grad():
        ours = model(x)
        ref = official_vit_logits(sd, x, len(model.blocks), heads, 16, global_pool)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,global_pool", [("convmae_tiny", True), ("convmae_tiny", False), ("convmae_base", True)])
def test_convvit_logits_equal_official(name, global_pool, one_thread):
    model = meta_model(name, num_classes=5, global_pool=global_pool, img_size=32)
    sd = random_state_dict({k: v.shape for k, v in model.state_dict().items()})
    model.load_state_dict(sd, strict=True, assign=True)
    model.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    depths = (len(model.blocks1), len(model.blocks2), len(model.blocks3))
    with torch.no_grad():
        ours = model(x)
        ref = official_convvit_logits(sd, x, depths, model.blocks3[0].attn.num_heads, global_pool)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_sim_differences_from_mae():
    sim, mae = build_classifier("sim_vit_tiny", 3), build_classifier("mae_vit_tiny", 3)
    assert not sim.pos_embed.requires_grad and mae.pos_embed.requires_grad  # SIM: fixed pos_embed
    layer_scale = build_classifier("sim_vit_tiny", 3, init_values=0.1)
    assert {k for k in layer_scale.state_dict() if ".ls" in k} == {f"blocks.{i}.ls{j}.gamma" for i in range(2) for j in (1, 2)}


def test_cls_token_features_are_the_raw_last_block_token():
    model = build_classifier("sim_vit_tiny", 3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = model.forward_tokens(x)
        assert torch.equal(cls_token_features(model, x), tokens[:, 0])
        assert not torch.allclose(tokens[:, 0].std(1), torch.ones(2), atol=1e-3)  # no LayerNorm applied
    with pytest.raises(ValueError):
        cls_token_features(build_classifier("convmae_tiny", 3, img_size=32), torch.randn(1, 3, 32, 32))


def test_drop_path_rates_follow_official_rule():
    model = build_classifier("convmae_tiny", 3, drop_path_rate=0.3, img_size=32)
    paths = [b.drop_path for b in [*model.blocks1, *model.blocks2]] + [b.drop_path1 for b in model.blocks3]
    rates = [getattr(p, "drop_prob", 0.0) for p in paths]  # rate 0: an Identity, as official
    assert rates == pytest.approx(torch.linspace(0, 0.3, 4).tolist())


# ---- loading --------------------------------------------------------------------------------------------
def official_interpolate_pos_embed(pos_embed, num_patches, num_extra):
    """facebookresearch/mae util/pos_embed.py interpolate_pos_embed on one tensor."""
    orig = int((pos_embed.shape[-2] - num_extra) ** 0.5)
    new = int(num_patches ** 0.5)
    extra, tokens = pos_embed[:, :num_extra], pos_embed[:, num_extra:]
    tokens = tokens.reshape(-1, orig, orig, pos_embed.shape[-1]).permute(0, 3, 1, 2)
    tokens = F.interpolate(tokens, size=(new, new), mode="bicubic", align_corners=False)
    return torch.cat([extra, tokens.permute(0, 2, 3, 1).flatten(1, 2)], 1)


def test_pretraining_file_loads_like_official_finetune(tmp_path):
    torch.manual_seed(0)
    pretrain = build_model("mae_vit_tiny")  # 64 px: 4 x 4 grid
    path = tmp_path / "mae_tiny.pth"
    torch.save({"model": pretrain.state_dict()}, path)
    model = build_classifier("mae_vit_tiny", 5, img_size=96)  # 6 x 6 grid
    report = load_classifier_weights(model, path)
    assert set(report.missing) == {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"}
    assert "norm.weight" in report.dropped and any(k.startswith("decoder_") for k in report.dropped)
    expected_pos = official_interpolate_pos_embed(pretrain.pos_embed.detach(), 36, 1)
    torch.testing.assert_close(model.pos_embed.detach(), expected_pos)
    assert torch.equal(model.blocks[1].mlp.fc2.weight, pretrain.blocks[1].mlp.fc2.weight)
    assert model.head.weight.abs().max() < 1e-4  # re-drawn with std 2e-5 (timm's cut at +-2 is absolute)


def test_convmae_pretraining_file_drops_the_decoder_paths():
    torch.manual_seed(0)
    pretrain = build_model("convmae_tiny", img_size=64)
    model = build_classifier("convmae_tiny", 4, img_size=64)
    report = load_classifier_weights(model, {"model": pretrain.state_dict()}["model"])
    assert any(k.startswith("stage1_output_decode") for k in report.dropped)
    assert torch.equal(model.pos_embed, pretrain.pos_embed) and torch.equal(model.patch_embed4.weight, pretrain.patch_embed4.weight)


def test_finetuned_file_round_trip_is_strict_and_exact(tmp_path):
    torch.manual_seed(1)
    trained = build_classifier("mae_vit_tiny", 4).eval()
    path = tmp_path / "finetuned.pth"
    torch.save({"model": trained.state_dict()}, path)
    fresh = build_classifier("mae_vit_tiny", 4).eval()
    report = load_classifier_weights(fresh, path)
    assert report.missing == [] and len(report.loaded) == len(trained.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(fresh(x), trained(x))
    with pytest.raises(CheckpointMismatchError):  # every key plus one it does not know
        load_classifier_weights(build_classifier("mae_vit_tiny", 4), {**trained.state_dict(), "extra.weight": torch.zeros(1)})
    with pytest.raises(CheckpointMismatchError):  # a trained classifier with another number of classes
        load_finetuned(build_classifier("mae_vit_tiny", 3), trained.state_dict(), "finetuned")


def test_partial_or_wrong_files_are_errors():
    sd = build_model("mae_vit_tiny").state_dict()
    with pytest.raises(CheckpointError):  # a block missing: left at init
        load_classifier_weights(build_classifier("mae_vit_tiny", 3), {k: v for k, v in sd.items() if ".1." not in k})
    with pytest.raises(CheckpointMismatchError):  # a ViT file into ConvMAE
        load_classifier_weights(build_classifier("convmae_tiny", 3, img_size=64), sd)


def test_sim_pretraining_file_loads_the_online_encoder():
    torch.manual_seed(0)
    pretrain = build_model("sim_vit_tiny")
    model = build_classifier("sim_vit_tiny", 3)
    report = load_classifier_weights(model, pretrain.state_dict())
    assert set(report.missing) == {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"}
    assert torch.equal(model.blocks[0].attn.qkv.weight, pretrain.blocks[0].attn.qkv.weight)
    assert not any(k.startswith("blocks.") for k in report.dropped)  # the online encoder's blocks all used


@pytest.mark.parametrize("name", ["mae_vit_tiny", "convmae_tiny"])
def test_grad_checkpointing_keeps_gradients(name, one_thread):
    torch.manual_seed(0)
    model = build_classifier(name, 3, img_size=32).train()
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for enable in (False, True):
        model.set_grad_checkpointing(enable)
        model.zero_grad()
        model(x).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
