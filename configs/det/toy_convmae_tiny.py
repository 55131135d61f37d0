"""CPU toy row (tests and the demo): the ConvMAE Mask R-CNN FPN recipe with a tiny ConvMAE (32/48/64)
at 192 px on the generated toy shapes. Same code path as the paper rows; only sizes and schedule shrink."""
from detectron2.config import LazyCall as L
from fvcore.common.param_scheduler import MultiStepParamScheduler

from .common.toy_heads import narrow_heads
from .mask_rcnn_convmae_b_fpn_25ep import dataloader, lr_multiplier, model, optimizer, train
from .toy_vitdet_tiny import dataloader as _toy_dataloader

image_size = 192
model.backbone.bottom_up.update(name="convmae_tiny", img_size=image_size, drop_path_rate=0.0,
                                window_size=4, global_blocks=(0,))
narrow_heads(model)
dataloader.train = _toy_dataloader.train
dataloader.test = _toy_dataloader.test

train.max_iter = 300
train.eval_period = 300
train.checkpointer.period = 100
train.log_period = 20
train.amp.enabled = False
optimizer.lr = 1e-3
lr_multiplier.scheduler = L(MultiStepParamScheduler)(values=[1.0, 0.1, 0.01], milestones=[240, 280],
                                                     num_updates=train.max_iter)
lr_multiplier.warmup_length = 20 / train.max_iter
