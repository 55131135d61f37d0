"""Paper row: SIM ViT-B, ViTDet Mask R-CNN, 100 epochs. Reported: 52.1 AP_box / 46.2 AP_mask
(OpenGVLab/Siamese-Image-Modeling README, which fine-tunes with the ViTDet recipe unchanged).

Weights: the official SIM ViT-B release (``sim_vit_base``; its online encoder is mapped, the target
branch, projector and predictor are dropped and reported); --weights for another SIM checkpoint.
"""
from .mask_rcnn_vitdet_mae_b_100ep import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

train.init_checkpoint = "sim_vit_base"  # pretrain.encoders.OFFICIAL_WEIGHTS
model.backbone.net.name = "sim_vit_base"  # the ViT-B of mae_vit_base, under its own name
