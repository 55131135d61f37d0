"""The claim's low-label detection row for ConvMAE (tools/mini_repro.py --claim --tasks det): the ConvMAE
Mask R-CNN FPN recipe with the claim's pretrained ConvMAE-tiny (32/48/64, pretrained at 64 px) on the
textured world's COCO-format set at 96 px, with the data, heads, schedule and lr of claim_vitdet_tiny.py.
The FPN keeps its strides 4-64 (p2-p6); the anchors shrink to 16-256 px (the boxes are 16-42 px).
Random and pretrained initialisation run this file as it is; only ``--weights`` differs."""
from .claim_vitdet_tiny import dataloader, image_size, lr_multiplier, train
from .claim_vitdet_tiny import optimizer as _vit_optimizer
from .common.toy import narrow_heads
from .mask_rcnn_convmae_b_fpn_25ep import model, optimizer

model.backbone.bottom_up.update(name="convmae_tiny", img_size=image_size)  # window 4, block 0 global
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64], [128], [256]]
narrow_heads(model, channels=32, fc_dim=128)
model.roi_heads.box_predictor.test_topk_per_image = 20  # as claim_vitdet_tiny.py
optimizer.lr = _vit_optimizer.lr  # the recipe's AdamW (no layer decay), the claim's lr
