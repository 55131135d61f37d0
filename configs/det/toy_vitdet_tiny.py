"""CPU toy row (tests and the demo): the ViTDet recipe with a tiny ViT (96-d, 2 blocks) at 192 px on
the generated toy shapes. Same code path as the paper rows; only sizes and schedule shrink."""
from functools import partial

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate

from .common.toy import narrow_heads, short_schedule
from .mask_rcnn_vitdet_mae_b_100ep import dataloader, model, optimizer, train

image_size = 192
model.backbone.net.update(name="mae_vit_tiny", img_size=image_size)  # window 4, block 1 global: the table
model.backbone.square_pad = image_size
# a 64-channel mask head: with 32, one seed in three stalled at twice the others' mask loss (5 AP_mask lower)
narrow_heads(model, mask_dim=64)

dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.8, max_scale=1.25, target_height=image_size, target_width=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
]
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size)]
dataloader.train.mapper.instance_mask_format = "bitmask"  # the toy set stores masks as RLE
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 1
dataloader.test.num_workers = 0

lr_multiplier = short_schedule(train, optimizer)
train.init_checkpoint = ""  # random initialisation unless --weights
optimizer.params.lr_factor_func = partial(get_vit_lr_decay_rate, num_layers=2, lr_decay_rate=0.7)
