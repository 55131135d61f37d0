"""Paper row: ConvMAE-B, Mask R-CNN FPN, 100 epochs (Alpha-VL/ConvMAE
DET/configs/convmae/convmae_base_mask_rcnn_FPN_100ep.py): batch 32, 368750 iters (100 ep = 368750 *
32 / 118000), AdamW lr 8e-5 betas (0.9, 0.999) wd 0.1 (0 on norms, pos_embed and the relative
position bias tables), cosine with warmup over 0.125% of training, AMP, LSJ 1024.
Weights: the official ConvMAE-B release (``convmae_base``; the official config's
``bottom_up.pretrained="./convmae_base.pth"``); --weights FILE for a local copy or an export of
tools/train_mim.py, --from-scratch for random initialisation.
"""
import torch
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from detectron2.solver.build import get_default_optimizer_params
from fvcore.common.param_scheduler import CosineParamScheduler

from .common.coco_lsj_padded import dataloader  # 1024x1024 inputs, train and test
from .common.mask_rcnn_convmae_fpn import model

dataloader.train.total_batch_size = 32

train = model_zoo.get_config("common/train.py").train
train.amp.enabled = True
train.ddp.fp16_compression = True
train.max_iter = 368750
train.init_checkpoint = "convmae_base"  # pretrain.encoders.OFFICIAL_WEIGHTS
train.eval_period = 3688
train.checkpointer.period = 3688
train.checkpointer.max_to_keep = 3

optimizer = L(torch.optim.AdamW)(
    params=L(get_default_optimizer_params)(
        weight_decay_norm=0.0,
        overrides={"pos_embed": {"weight_decay": 0.0}, "relative_position_bias_table": {"weight_decay": 0.0}},
    ),
    lr=8.0e-05,
    betas=(0.9, 0.999),
    weight_decay=0.1,
)
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(CosineParamScheduler)(start_value=1.0, end_value=0.0),
    warmup_length=0.125 / 100,
    warmup_factor=0.001,
)
