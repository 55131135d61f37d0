"""One contract over every encoder of the table (pretrain/encoders.py ENCODERS), as timm's
tests/test_models.py does over its registry: the pretraining model and the transfer backbone build
under the encoder's name, run forward and backward, give the feature maps they declare, name only
parameters they have in ``no_weight_decay`` and survive a state-dict round trip.

CPU sizes (``*_tiny``) compute for real; the paper sizes are built on the ``meta`` device (shapes
without storage, no arithmetic), so checking ViT-H costs milliseconds. Model-specific behaviour
(masking, losses, official keys) stays in test_mae.py, test_convmae.py, test_sim.py, test_backbones.py.
"""
from __future__ import annotations

import io

import pytest
import torch

from pretrain.encoders import ENCODERS
from pretrain.models import build_model
from pretrain.checkpoints import load_pretrained
from transfer.backbones import build_backbone, load_backbone_checkpoint

NAMES = sorted(ENCODERS)
TINY = [n for n in NAMES if n.endswith("_tiny")]
BACKBONES = [n for n in NAMES if ENCODERS[n].backbone]


def built(name: str, backbone: bool = False) -> torch.nn.Module:
    """The pretraining model (or backbone) of ``name``: real at CPU sizes, on ``meta`` otherwise."""
    build = build_backbone if backbone else build_model
    torch.manual_seed(0)
    if name in TINY:
        return build(name)
    with torch.device("meta"):
        return build(name)


def pretraining_loss(name: str, model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(loss, pred) of one pretraining step on a generated 64 x 64 batch of 2 (SIM: two views)."""
    torch.manual_seed(1)
    if ENCODERS[name].family == "sim":
        from test_sim import inputs  # SIM's generated views, relative crop and block mask (tests/ is on sys.path)

        x1, x2, rel, mask = inputs()
        return model(x1, x2, rel, 0.99, True, mask=mask)[0], None
    loss, pred, _ = model(torch.randn(2, 3, 64, 64), 0.75)
    return loss, pred


def test_the_contract_covers_every_family_and_backbone():
    assert {ENCODERS[n].family for n in TINY} == {e.family for e in ENCODERS.values()}
    assert {ENCODERS[n].backbone for n in TINY if ENCODERS[n].backbone} == {e.backbone for e in ENCODERS.values()
                                                                          if e.backbone}


# ---- the pretraining model ----------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_pretraining_model_builds_and_its_encoder_is_part_of_it(name):
    model = built(name)
    state = model.state_dict()
    encoder = model.encoder_state_dict()
    assert encoder and set(encoder) < set(state)  # the decoder / predictor are not in the encoder file
    assert all(encoder[k].shape == state[k].shape for k in encoder)


@pytest.mark.parametrize("name", TINY)
def test_pretraining_forward_and_backward(name):
    model = built(name).train()
    loss, pred = pretraining_loss(name, model)
    assert loss.ndim == 0 and torch.isfinite(loss)
    if pred is not None:  # MAE / ConvMAE: one prediction per 16 x 16 patch of the 64 x 64 image
        assert pred.shape == (2, 16, 16 * 16 * 3)
    loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    no_grad = [n for n, p in trainable.items() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"trainable parameters without a finite gradient: {no_grad[:5]}"


@pytest.mark.parametrize("name", TINY)
def test_pretraining_state_dict_round_trip(name):
    model = built(name).eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    torch.manual_seed(123)
    other = build_model(name).eval()  # another initialisation
    other.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True), strict=True)
    with torch.no_grad():
        assert torch.equal(pretraining_loss(name, model)[0], pretraining_loss(name, other)[0])


@pytest.mark.parametrize("name", TINY)
def test_encoder_only_file_loads_the_encoder_and_leaves_the_rest(name, tmp_path):
    """An encoder file in the official ``{'model': ...}`` layout (what ``tools/train_mim.py --export``
    writes) loads back through ``load_pretrained``: every encoder tensor equal, the decoder side reported
    missing (BatchNorm's counters fill themselves)."""
    source, target = built(name), build_model(name)
    encoder = source.encoder_state_dict()
    torch.save({"model": encoder}, tmp_path / "encoder.pth")
    missing = load_pretrained(target, tmp_path / "encoder.pth")
    assert set(missing) == {k for k in target.state_dict() if k not in encoder and "num_batches_tracked" not in k}
    assert all(torch.equal(target.state_dict()[k], v) for k, v in encoder.items())


# ---- the transfer backbone ----------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_gives_the_feature_maps_it_declares(name):
    backbone = built(name, backbone=True).eval()
    h, w = (128, 96) if name in TINY else (256, 192)
    device = "cpu" if name in TINY else "meta"
    with torch.no_grad():
        out = backbone(torch.zeros(1, 3, h, w, device=device))
    assert list(out) == list(backbone.out_features)
    for key, feature in out.items():
        stride = backbone.out_strides[key]
        assert tuple(feature.shape) == (1, backbone.out_channels[key], h // stride, w // stride), key


@pytest.mark.parametrize("name", TINY)
def test_backbone_backward_reaches_every_trainable_parameter(name):
    backbone = built(name, backbone=True).train()
    out = backbone(torch.randn(1, 3, 128, 96))
    sum(feature.square().mean() for feature in out.values()).backward()
    no_grad = [n for n, p in backbone.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"trainable parameters without a gradient: {no_grad[:5]}"


@pytest.mark.parametrize("name", BACKBONES)
def test_no_weight_decay_names_existing_parameters(name):
    backbone = built(name, backbone=True)
    names = backbone.no_weight_decay()
    assert names and names <= {n for n, _ in backbone.named_parameters()}


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_takes_its_pretraining_model(name):
    """Every backbone parameter but the relative position tables (absent from pretraining) comes from
    the encoder's own pretraining checkpoint; the pretraining-only tensors are dropped."""
    source, backbone = built(name), built(name, backbone=True)
    report = load_backbone_checkpoint(backbone, source.state_dict())
    assert all("rel_pos" in k for k in report.missing), report.missing
    assert report.loaded and report.dropped


@pytest.mark.parametrize("name", TINY)
def test_backbone_state_dict_round_trip(name):
    backbone = built(name, backbone=True).eval()
    torch.manual_seed(123)
    other = build_backbone(name).eval()
    other.load_state_dict(backbone.state_dict(), strict=True)
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(backbone(x).values(), other(x).values()))
