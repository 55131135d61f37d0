# UperNet with an auxiliary FCN head, as mmsegmentation 1.2.2 configs/_base_/models/upernet_mae.py
# and Alpha-VL/ConvMAE SEG/configs/_base_/models/upernet.py: UPerHead (pool scales 1/2/3/6,
# dropout 0.1, loss weight 1.0) on all four levels, FCNHead (1 conv, 256 ch, loss weight 0.4) on the
# stride-16 level, SyncBN (reverted to BN by mmengine when not distributed). Rows set the backbone,
# the neck and the channel numbers.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512))  # pad to the crop
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,  # pretraining checkpoint of the backbone: tools/train_seg.py --weights
    backbone=dict(),
    decode_head=dict(
        type='UPerHead',
        in_channels=[768, 768, 768, 768],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=768,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=768,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
