"""One activation-checkpointing switch for MAE, SIM and ConvMAE (pretrain.models.vit_common)."""
from __future__ import annotations

import pytest
import torch
import torch.utils.checkpoint

from pretrain.models import build_model
from pretrain.models import vit_common
from test_sim import inputs as sim_inputs  # tests/ is on sys.path (pytest rootdir-less import)


@pytest.mark.parametrize("name", ["mae_vit_tiny", "convmae_tiny", "sim_vit_tiny"])
def test_one_switch_checkpoints_every_model_and_keeps_the_gradients(name, monkeypatch):
    calls = []
    real = torch.utils.checkpoint.checkpoint

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(vit_common, "checkpoint", counting)
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for enabled in (False, True):
        torch.manual_seed(0)
        model = build_model(name).train()
        model.set_grad_checkpointing(enabled)
        calls.clear()
        torch.manual_seed(1)
        if name.startswith("sim"):
            x1, x2, rel, mask = sim_inputs()
            loss = model(x1, x2, rel, 0.99, True, mask=mask)[0]
        else:
            loss = model(x, 0.75)[0]
        loss.backward()
        assert bool(calls) == enabled  # the switch really routes the blocks through checkpoint
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], msg=k)
