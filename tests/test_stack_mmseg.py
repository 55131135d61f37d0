"""The mmsegmentation stack works here: UperNet (shrunk) trains one step and predicts (needs mmcv ops)."""
import math

import torch
from mmengine.optim import OptimWrapper

from transfer.seg.smoke import build_tiny_upernet, toy_seg_batch


def test_mmcv_compiled_ops_are_present():
    from mmcv.ops import roi_align  # noqa: F401  (imports mmcv._ext)

    import mmcv._ext  # noqa: F401


def test_upernet_train_step_and_inference():
    torch.manual_seed(0)
    model = build_tiny_upernet(img_size=64, num_classes=4)
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-4))
    batch = toy_seg_batch(img_size=64, num_classes=4, batch=2)

    model.train()
    log_vars = model.train_step(batch, optim)
    assert {"decode.loss_ce", "aux.loss_ce", "loss"} <= set(log_vars)
    assert all(math.isfinite(float(v)) for v in log_vars.values())

    model.eval()
    preds = model.test_step(toy_seg_batch(img_size=64, num_classes=4, batch=1, seed=1))
    assert len(preds) == 1
    seg = preds[0].pred_sem_seg.data
    assert seg.shape == (1, 64, 64)
    assert preds[0].seg_logits.data.shape == (4, 64, 64)
    assert int(seg.min()) >= 0 and int(seg.max()) < 4
