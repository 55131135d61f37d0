"""Paper row: MAE ViT-L, ViTDet Mask R-CNN, 100 epochs (reported in the ViTDet paper's ViT-L row;
detectron2 projects/ViTDet/configs/COCO/mask_rcnn_vitdet_l_100ep.py): the ViT-B recipe
with ViT-L (24 blocks, global 5/11/17/23), drop path 0.4 and layer decay 0.8 over 24 layers, from the
official MAE ViT-L release (``mae_pretrain_vit_large``).
"""
from functools import partial

from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate

from .mask_rcnn_vitdet_mae_b_100ep import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

train.init_checkpoint = "mae_pretrain_vit_large"  # pretrain.encoders.OFFICIAL_WEIGHTS
model.backbone.net.name = "mae_vit_large"  # global blocks 5/11/17/23, drop path 0.4: pretrain/encoders.py
optimizer.params.lr_factor_func = partial(get_vit_lr_decay_rate, num_layers=24, lr_decay_rate=0.8)
