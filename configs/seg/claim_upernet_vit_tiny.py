"""The claim's low-label segmentation row (tools/mini_repro.py --claim --tasks seg): the MAE UperNet
recipe (toy_upernet_vit_tiny.py, shrunk from upernet_mae_vit_base_512_160k_ade20k.py) with the claim's
pretrained ViT (96-d x 2 blocks x 3 heads, 8-px patches, pretrained at 64 px) on the textured world's
ADE-format set rendered at 96 px: 64 training images, background + 8 classes.

Scale: the objects (radius 8-21 px at 96 px) keep the range the pretraining pool showed (5-26 px);
the 8-px patches give a stride-8 map (12 x 12), rescaled 2 / 1 / 0.5 / 0.25 by Feature2Pyramid to the
recipe's strides 4-32. Random and pretrained initialisation run this file as it is; only ``--weights``
differs. Every schedule value is written here so a change of the toy rows does not move the claim's runs.
``mini_repro --claim --ft-iters N`` sets its length by overrides (transfer/claim/finetune.seg_schedule_options).
"""
_base_ = ['./toy_upernet_vit_tiny.py']

crop_size = (96, 96)
max_iters = 480  # 60 epochs of the 64 labelled images at batch 8
warmup_iters = 20
dim = 96
num_classes = 9
# background weighs 0.2 in the loss: unweighted, both initialisations predicted background everywhere after
# 480 iterations (mIoU 9.58 = background IoU / 9 for random and MAE at seed 0: objects ~14 % of the pixels,
# split over 8 classes the model cannot yet tell apart, so background won every argmax)
class_weight = [0.2] + [1.0] * 8

metainfo = dict(
    classes=('background', 'square-stripes', 'square-checker', 'disk-stripes', 'disk-checker',
             'triangle-stripes', 'triangle-checker', 'cross-stripes', 'cross-checker'),
    palette=[[120, 120, 120], [220, 20, 60], [255, 120, 140], [0, 128, 255], [120, 190, 255],
             [255, 200, 0], [255, 235, 140], [40, 170, 60], [150, 220, 150]])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),  # reduce_zero_label is set on the dataset
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations'),  # reduce_zero_label is set on the dataset
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=8, dataset=dict(metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, dataset=dict(metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader

model = dict(
    data_preprocessor=dict(size=crop_size, seg_pad_val=0),  # crops padded as background: mmseg's class_weight
    # indexes the weights by every label, the ignore label 255 included
    backbone=dict(
        name='mae_vit_tiny', img_size=96, pretrain_img_size=64, patch_size=8, embed_dim=dim, depth=2,
        num_heads=3, global_blocks=(0, 1), drop_path_rate=0.0, out_indices=(0, 0, 1, 1)),
    neck=dict(embed_dim=dim, rescales=[2, 1, 0.5, 0.25]),
    decode_head=dict(in_channels=[dim] * 4, channels=64, num_classes=num_classes,
                     loss_decode=dict(class_weight=class_weight)),
    auxiliary_head=dict(in_channels=dim, channels=32, num_classes=num_classes,
                        loss_decode=dict(class_weight=class_weight)),
    test_cfg=dict(mode='whole'))

optim_wrapper = dict(optimizer=dict(lr=2e-3), paramwise_cfg=dict(num_layers=2, layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=40), checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
