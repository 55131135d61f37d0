"""Toy row (tests and CPU demo, not a paper row): the MAE recipe (upernet_mae_vit_base_512_160k_ade20k.py:
ViT with the class token in attention, per-block rel-pos bias and layer scale, Feature2Pyramid, UPerHead +
FCN head, AdamW with layer decay, warmup + poly) shrunk to a 96-d x 4-block ViT on the generated ADE-format toy set
(tools/make_toy_data.py --only ade: 128x128 images, background + square / disk / triangle after
reduce_zero_label), 128x128 crops, trained from scratch on CPU in a few minutes.

    python tools/train_seg.py --backbone mae_vit_tiny --dataset toy
"""
_base_ = ['./upernet_mae_vit_base_512_160k_ade20k.py']

crop_size = (128, 128)
max_iters = 400
warmup_iters = 20
norm_cfg = dict(type='BN', requires_grad=True)
dim = 96

# ---- data: the toy set in the ADE layout, 4 classes ----------------------------------------------
dataset_type = 'BaseSegDataset'
data_root = 'datasets/toy/ade'
metainfo = dict(classes=('background', 'square', 'disk', 'triangle'),
                palette=[[120, 120, 120], [220, 20, 60], [0, 128, 255], [255, 200, 0]])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),  # reduce_zero_label is set on the dataset
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),  # reduce_zero_label is set on the dataset
    dict(type='PackSegInputs'),
]
toy_dataset = dict(type=dataset_type, data_root=data_root, metainfo=metainfo, img_suffix='.jpg',
                   seg_map_suffix='.png', reduce_zero_label=True)
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **toy_dataset, pipeline=train_pipeline,
                 data_prefix=dict(img_path='images/training', seg_map_path='annotations/training')))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **toy_dataset, pipeline=test_pipeline,
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation')))
test_dataloader = val_dataloader

# ---- model: tiny ViT, 4 blocks, all global, per-block rel-pos bias, layer scale -----------------
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        name='mae_vit_tiny', pretrained=None, img_size=128, pretrain_img_size=128, embed_dim=dim, depth=4,
        num_heads=3, global_blocks=(0, 1, 2, 3), drop_path_rate=0.0, out_indices=(0, 1, 2, 3)),
    neck=dict(embed_dim=dim, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[dim] * 4, channels=64, num_classes=4, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=dim, channels=32, num_classes=4, norm_cfg=norm_cfg),
    test_cfg=dict(mode='whole'))

# ---- schedule: the recipe's optimizer, shortened --------------------------------------------------
optim_wrapper = dict(optimizer=dict(lr=1e-3),
                     paramwise_cfg=dict(num_layers=4, layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
