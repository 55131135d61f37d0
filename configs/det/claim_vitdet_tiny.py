"""The claim's low-label detection row (tools/mini_repro.py --claim --tasks det): the ViTDet Mask R-CNN
recipe with the claim's pretrained ViT (96-d x 2 blocks x 3 heads, 8-px patches, pretrained at 64 px) on
the textured world's COCO-format set rendered at 96 px (objects of radius 8-21 px: inside the range the
pretraining pool showed, 5-14 px in its scenes and 17-26 px in its single-object images).

The 8-px patches give a stride-8 map (12 x 12 at 96 px); the simple feature pyramid rescales it by
2 / 1 / 0.5 to strides 4 / 8 / 16 (p2-p4, no max-pooled level); the RPN and the RoI heads read p2-p4,
the anchors are 16 / 32 / 64 px (the boxes are 16-42 px). Random and pretrained initialisation run this file as it is; only
``--weights`` differs. Every schedule value is written here (not taken from common/toy.py) so that a
change of the toy demo's schedule does not move the claim's runs. ``mini_repro --claim --ft-iters N``
sets its length by overrides (transfer/claim/finetune.det_schedule_options: steps and warm-up as here).
"""
from functools import partial

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

from .common.toy import narrow_heads
from .mask_rcnn_vitdet_mae_b_100ep import dataloader, model, optimizer, train

image_size = 96
max_iter = 480  # 30 epochs of the 64 labelled images at batch 4

model.backbone.net.update(name="mae_vit_tiny", img_size=image_size, patch_size=8)  # window 4, block 1 global
model.backbone.square_pad = image_size
model.backbone.scale_factors = (2.0, 1.0, 0.5)
model.backbone.top_block = None
model.proposal_generator.in_features = ["p2", "p3", "p4"]
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64]]
model.proposal_generator.anchor_generator.strides = [4, 8, 16]
model.roi_heads.box_in_features = model.roi_heads.mask_in_features = ["p2", "p3", "p4"]
model.roi_heads.box_pooler.scales = model.roi_heads.mask_pooler.scales = (1 / 4, 1 / 8, 1 / 16)
narrow_heads(model, channels=32, fc_dim=128)
model.roi_heads.box_predictor.test_topk_per_image = 20  # <= 4 objects an image; 100 masks cost 5x the eval

dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.8, max_scale=1.25, target_height=image_size, target_width=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
]
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size)]
dataloader.train.mapper.instance_mask_format = "bitmask"  # the generated set stores masks as RLE
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 0
dataloader.test.num_workers = 0

train.max_iter = max_iter
train.eval_period = max_iter
train.checkpointer.period = max_iter
train.checkpointer.max_to_keep = 1
train.log_period = 40
train.amp.enabled = False
train.init_checkpoint = ""  # random initialisation unless --weights
optimizer.lr = 2e-3
optimizer.params.lr_factor_func = partial(get_vit_lr_decay_rate, num_layers=2, lr_decay_rate=0.7)
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(
        values=[1.0, 0.1, 0.01], milestones=[int(0.8 * max_iter), int(0.93 * max_iter)], num_updates=max_iter
    ),
    warmup_length=20 / max_iter,
    warmup_factor=0.001,
)
