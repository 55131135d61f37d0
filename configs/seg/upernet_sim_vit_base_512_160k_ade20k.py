"""Paper row: SIM (Siamese Image Modeling) ViT-B/16 + UperNet, ADE20K, 512x512, 160k iterations.
Reported: 51.1 mIoU (OpenGVLab/Siamese-Image-Modeling README, results table).

Source: the SIM README, "ADE20k Segmentation": "We follow MAE to use UPerNet for segmentation task,
please refer to mmsegmentation (configs/mae)". So this row is the MAE row unchanged
(upernet_mae_vit_base_512_160k_ade20k.py); only the weights differ.

Weights: the official SIM ViT-B pretraining checkpoint by name (``sim_vit_base``; its online encoder is
mapped; the target branch (mm_*), projector, predictor and decoder are dropped and reported);
--weights NAME|PATH picks another, --from-scratch none.
"""
_base_ = ['./upernet_mae_vit_base_512_160k_ade20k.py']

model = dict(backbone=dict(name='sim_vit_base', pretrained='sim_vit_base'))
