"""Fine-tuning and probing optimisation pieces against the official code re-expressed here:
layer-wise lr decay groups (facebookresearch/mae and Alpha-VL/ConvMAE util/lr_decay.py), LARS
(util/lars.py), the linear-probe head (main_linprobe.py) and the few-shot logistic regression
(OpenGVLab/Siamese-Image-Modeling main_logistic.py's objective)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transfer.cls.fewshot import fit_logistic, logistic_objective, preprocess_rows
from transfer.cls.lars import LARS
from transfer.cls.layer_decay import param_groups_lrd
from transfer.cls.linear_probe import to_linear_probe
from transfer.cls.models import build_classifier


# ---- layer decay ------------------------------------------------------------------------------------
def official_layer_id(name: str, num_layers: int, convmae: bool) -> int:
    """get_layer_id_for_vit of mae util/lr_decay.py (convmae=False) / ConvMAE util/lr_decay.py."""
    if name in ("cls_token", "pos_embed") or name.startswith("patch_embed"):
        return 0
    if convmae and name.startswith(("blocks1", "blocks2")):
        return 0
    if name.startswith("blocks3" if convmae else "blocks"):
        return int(name.split(".")[1]) + 1
    return num_layers


def official_param_groups_lrd(model, weight_decay, no_weight_decay_list, layer_decay, convmae):
    """param_groups_lrd of the official util/lr_decay.py: {param name: (lr_scale, weight_decay)} + group order."""
    num_layers = len(model.blocks3 if convmae else model.blocks) + 1
    scales = [layer_decay ** (num_layers - i) for i in range(num_layers + 1)]
    per_param, order = {}, []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = not (p.ndim == 1 or n in no_weight_decay_list)
        layer_id = official_layer_id(n, num_layers, convmae)
        group = f"layer_{layer_id}_{'decay' if decay else 'no_decay'}"
        if group not in order:
            order.append(group)
        per_param[n] = (scales[layer_id], weight_decay if decay else 0.0, order.index(group))
    return per_param


@pytest.mark.parametrize("name,layer_decay", [("mae_vit_base", 0.65), ("sim_vit_base", 0.65), ("convmae_base", 0.65),
                                              ("mae_vit_large", 0.75)])
def test_layer_decay_groups_equal_official(name, layer_decay):
    with torch.device("meta"):
        model = build_classifier(name, 1000, drop_path_rate=0.1)
    convmae = name.startswith("convmae")
    ref = official_param_groups_lrd(model, 0.05, model.no_weight_decay(), layer_decay, convmae)
    groups = param_groups_lrd(model, 0.05, model.no_weight_decay(), layer_decay)
    names = {id(p): n for n, p in model.named_parameters()}
    ours = {names[id(p)]: (g["lr_scale"], g["weight_decay"], i) for i, g in enumerate(groups) for p in g["params"]}
    assert ours == ref
    assert ours["head.weight"][:2] == (1.0, 0.05) and ours["cls_token" if not convmae else "pos_embed"][1] == 0.0
    assert ("pos_embed" in ours) == (not name.startswith("sim"))  # SIM's fixed pos_embed is not optimised


# ---- LARS and the linear-probe head ----------------------------------------------------------------------
def official_lars_step(params, grads, state, lr, weight_decay, momentum=0.9, trust_coefficient=0.001):
    """util/lars.py LARS.step on plain tensors (state: list of momentum buffers, updated in place)."""
    for i, (p, dp) in enumerate(zip(params, grads)):
        if p.ndim > 1:
            dp = dp.add(p, alpha=weight_decay)
            param_norm, update_norm = torch.norm(p), torch.norm(dp)
            one = torch.ones_like(param_norm)
            q = torch.where(param_norm > 0.0, torch.where(update_norm > 0, trust_coefficient * param_norm / update_norm, one), one)
            dp = dp.mul(q)
        state[i] = state[i] * momentum + dp
        p.add_(state[i], alpha=-lr)


def probe_and_batch():
    torch.manual_seed(0)
    model = to_linear_probe(build_classifier("mae_vit_tiny", 5, global_pool=False)).train()
    x, y = torch.randn(6, 3, 64, 64), torch.tensor([0, 1, 2, 3, 4, 0])
    return model, x, y


def test_linear_probe_head_equals_official():
    model, x, _ = probe_and_batch()
    bn, linear = model.head
    assert isinstance(bn, torch.nn.BatchNorm1d) and not bn.affine and bn.eps == 1e-6 and bn.num_features == 96
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"head.1.weight", "head.1.bias"}
    with torch.no_grad():
        feats = model.forward_tokens(x)[:, 0]  # MAE linprobe: the class token after norm (the trunk's
        # features equal the official ones: tests/test_cls_models.py, global_pool=False)
        ref = F.linear(F.batch_norm(feats, None, None, training=True, eps=1e-6), linear.weight, linear.bias)
        torch.testing.assert_close(model(x), ref)
    assert 0.005 < linear.weight.std() < 0.02  # re-drawn with std 0.01
    with pytest.raises(TypeError):
        to_linear_probe(model)  # already converted


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_lars_steps_equal_official(weight_decay):
    model, x, y = probe_and_batch()
    params = [p for p in model.head.parameters()]
    ref_params, ref_state = [p.detach().clone() for p in params], [torch.zeros_like(p) for p in params]
    opt = LARS(model.head.parameters(), lr=0.3, weight_decay=weight_decay)
    for _ in range(2):  # two steps: momentum included
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        grads = [p.grad.clone() for p in params]
        opt.step()
        official_lars_step(ref_params, grads, ref_state, 0.3, weight_decay)
        for ours, ref in zip(params, ref_params):
            torch.testing.assert_close(ours.detach(), ref, rtol=1e-6, atol=1e-7)


def test_timm_lars_is_not_the_official_one():
    """Why transfer/cls/lars.py exists: timm's Lars (wd 0, the probe recipe) takes another step."""
    from timm.optim import Lars

    model, x, y = probe_and_batch()
    start = [p.detach().clone() for p in model.head.parameters()]
    F.cross_entropy(model(x), y).backward()
    grads = [p.grad.clone() for p in model.head.parameters()]
    Lars(model.head.parameters(), lr=0.3, momentum=0.9, weight_decay=0.0).step()
    official_lars_step(start, grads, [torch.zeros_like(p) for p in start], 0.3, 0.0)
    assert not torch.allclose(model.head[1].weight.detach(), start[0])


# ---- few-shot logistic regression ----------------------------------------------------------------------
def test_preprocess_rows_centres_and_normalises_each_row():
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 4.0]])
    out = preprocess_rows(x)
    torch.testing.assert_close(out.sum(1), torch.zeros(2, dtype=out.dtype), atol=1e-12, rtol=0)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2, dtype=out.dtype))
    torch.testing.assert_close(out[0], torch.tensor([-1.0, 0.0, 1.0], dtype=out.dtype) / 2**0.5)


def test_fit_logistic_reaches_the_regularised_optimum():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 2
    labels = torch.arange(4).repeat(10)
    feats = centres[labels] + torch.randn(40, 16, generator=g)
    clf = fit_logistic(feats, labels, 4, lambd=0.5)
    x, reg = preprocess_rows(feats), 0.5 / 40
    w = clf.weight.clone().requires_grad_(True)
    logistic_objective(w, x, labels, reg).backward()
    assert w.grad.abs().max() < 1e-5  # stationary point of a strictly convex objective: the minimiser
    ref = torch.zeros_like(w, requires_grad=True)  # an independent solver: plain gradient descent
    opt = torch.optim.SGD([ref], lr=2.0)
    for _ in range(3000):
        opt.zero_grad()
        logistic_objective(ref, x, labels, reg).backward()
        opt.step()
    assert logistic_objective(clf.weight, x, labels, reg) <= logistic_objective(ref.detach(), x, labels, reg) + 1e-8
    assert (clf.scores(feats).argmax(1) == labels).float().mean() == 1.0


def test_fit_logistic_checks_its_input():
    with pytest.raises(ValueError):
        fit_logistic(torch.randn(3, 4), torch.tensor([0, 1]), 2)
