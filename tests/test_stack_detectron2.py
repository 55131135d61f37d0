"""The detectron2 stack works here: its ViTDet Mask R-CNN (shrunk) trains one step and predicts."""
import math

import torch
from detectron2.utils.events import EventStorage

from transfer.det.smoke import tiny_vitdet_mask_rcnn, toy_instance_sample


def test_vitdet_mask_rcnn_train_step_and_inference():
    torch.manual_seed(0)
    model = tiny_vitdet_mask_rcnn(img_size=128, num_classes=3)
    batch = [toy_instance_sample(128, seed=s) for s in range(2)]

    model.train()
    with EventStorage(0):  # detectron2 models log training statistics into an event storage
        losses = model(batch)
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"}
    total = sum(losses.values())
    assert math.isfinite(total.item())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    total.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    opt.step()

    model.eval()
    with torch.no_grad():
        out = model([{"image": batch[0]["image"], "height": 96, "width": 80}])
    inst = out[0]["instances"]
    assert inst.image_size == (96, 80)  # predictions are rescaled to the requested output size
    n = len(inst)
    assert inst.pred_boxes.tensor.shape == (n, 4)
    assert inst.scores.shape == (n,) and inst.pred_classes.shape == (n,)
    assert inst.pred_masks.shape == (n, 96, 80)
    assert bool(((inst.pred_classes >= 0) & (inst.pred_classes < 3)).all())
