"""CPU toy row (tests and the demo): the ConvMAE Mask R-CNN FPN recipe with a tiny ConvMAE (32/48/64)
at 192 px on the generated toy shapes. Same code path as the paper rows; only sizes and schedule shrink."""
from .common.toy import narrow_heads, short_schedule
from .mask_rcnn_convmae_b_fpn_25ep import dataloader, model, optimizer, train
from .toy_vitdet_tiny import dataloader as _toy_dataloader

image_size = 192
model.backbone.bottom_up.update(name="convmae_tiny", img_size=image_size)  # window 4, block 0 global
narrow_heads(model, mask_dim=64)  # 32 channels stalled at some seeds (docs/DETECTION.md)
dataloader.train = _toy_dataloader.train
dataloader.test = _toy_dataloader.test

lr_multiplier = short_schedule(train, optimizer)
train.init_checkpoint = ""  # random initialisation unless --weights
