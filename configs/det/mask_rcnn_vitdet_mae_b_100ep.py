"""Paper row: MAE ViT-B, ViTDet Mask R-CNN, 100 epochs. Reported: 51.6 AP_box / 45.9 AP_mask (ViTDet
paper; detectron2 projects/ViTDet/configs/COCO/mask_rcnn_vitdet_b_100ep.py, whose recipe this is).

100 ep = 184375 iters * 64 images/iter / 118000 images/ep; lr steps at 88.9% and 96.3% of training.
Weights: the official MAE ViT-B release (``mae_pretrain_vit_base``, as detectron2's config:
detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_base.pth); --weights NAME|PATH for another
(e.g. an export of tools/train_mim.py), --from-scratch for random initialisation.
"""
from functools import partial

from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

from .common.coco_lsj import dataloader
from .common.mask_rcnn_vitdet import model

train = model_zoo.get_config("common/train.py").train
train.amp.enabled = True
train.ddp.fp16_compression = True
train.init_checkpoint = "mae_pretrain_vit_base"  # pretrain.encoders.OFFICIAL_WEIGHTS
train.max_iter = 184375
train.eval_period = 5000
train.checkpointer.period = 5000
train.checkpointer.max_to_keep = 3

lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(
        values=[1.0, 0.1, 0.01], milestones=[163889, 177546], num_updates=train.max_iter
    ),
    warmup_length=250 / train.max_iter,
    warmup_factor=0.001,
)

optimizer = model_zoo.get_config("common/optim.py").AdamW  # lr 1e-4, wd 0.1, betas (0.9, 0.999)
optimizer.params.lr_factor_func = partial(get_vit_lr_decay_rate, num_layers=12, lr_decay_rate=0.7)
optimizer.params.overrides = {"pos_embed": {"weight_decay": 0.0}}
