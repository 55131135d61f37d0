"""Our state dict keys and shapes equal the official models' (tests/data/official_keys/*.json, copies
of the manifests read off facebookresearch/mae and OpenGVLab/Siamese-Image-Modeling), so official
checkpoints load strictly; encoder-only ones load into the encoder; wrong ones fail by name."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pretrain.models import build_model
from pretrain.checkpoints import CheckpointMismatchError, load_pretrained, load_state_dict_checked
from pretrain.encoders import ENCODERS

DATA = Path(__file__).parent / "data" / "official_keys"
NAMES = ["mae_vit_base", "mae_vit_large", "mae_vit_huge", "sim_vit_base"]


def official(name: str) -> dict:
    """The official keys of encoder ``name``, stored under the official model's function name."""
    return json.loads((DATA / f"{ENCODERS[name].pretrain_factory}.json").read_text())


def distinct_state_dict(keys: dict[str, list[int]], offset: int = 0) -> dict[str, torch.Tensor]:
    """Tensors of the official shapes, each filled with its own value (cheap, and shows that every
    key lands in its own place)."""
    return {
        k: torch.full(shape, float(i + offset)) if shape else torch.tensor(i + offset)
        for i, (k, shape) in enumerate(keys.items())
    }


@pytest.mark.parametrize("name", NAMES)
def test_keys_and_shapes_equal_official(name):
    ref = official(name)
    with torch.device("meta"):  # shapes only: builds ViT-H in a fraction of a second
        model = build_model(name)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert set(ours) - set(ref["keys"]) == set(), "keys the official model does not have"
    assert set(ref["keys"]) - set(ours) == set(), "official keys we lack"
    assert ours == ref["keys"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]


@pytest.fixture(scope="module")
def mae_base():
    torch.manual_seed(0)
    return build_model("mae_vit_base")


@pytest.mark.parametrize("name", ["mae_vit_base", "sim_vit_base"])
def test_full_official_state_dict_loads_strictly(name, mae_base):
    model = mae_base if name.startswith("mae") else build_model(name)
    sd = distinct_state_dict(official(name)["keys"])
    assert load_state_dict_checked(model, sd, name="official") == []
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in sd.items())
    model.load_state_dict(sd, strict=True)


def test_encoder_only_official_checkpoint(mae_base, tmp_path):
    keys = official("mae_vit_base")["keys"]
    decoder = {k for k in keys if k.startswith("decoder_") or k == "mask_token"}
    enc = distinct_state_dict({k: v for k, v in keys.items() if k not in decoder}, offset=1000)
    path = tmp_path / "mae_pretrain_vit_base.pth"
    torch.save({"model": enc}, path)  # the released files' layout
    missing = load_pretrained(mae_base, path)
    assert set(missing) == decoder
    assert torch.equal(mae_base.state_dict()["blocks.3.attn.qkv.weight"], enc["blocks.3.attn.qkv.weight"])


def test_wrong_architecture_fails_naming_keys_and_shapes(mae_base):
    large = {k: torch.empty(v, device="meta") for k, v in official("mae_vit_large")["keys"].items()}
    with pytest.raises(CheckpointMismatchError) as err:
        load_pretrained(mae_base, large, name="mae_pretrain_vit_large.pth")
    assert "cls_token" in str(err.value)  # the first mismatching key is named
    sim = {k: torch.empty(v, device="meta") for k, v in official("sim_vit_base")["keys"].items()}
    with pytest.raises(CheckpointMismatchError, match=r"norm\.weight"):  # SIM has no final norm
        load_pretrained(mae_base, {k: v for k, v in sim.items() if not k.startswith(("mm_", "decoder", "pro", "pre"))})
