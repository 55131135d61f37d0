"""The claim's low-label segmentation row for ConvMAE (tools/mini_repro.py --claim --tasks seg): the
ConvMAE UperNet recipe of toy_upernet_convmae_tiny.py (all-global stage 3, per-block rel-pos bias, layer
scale, conv E4, no neck) with the claim's pretrained ConvMAE-tiny (32/48/64, pretrained at 64 px), on the
data and schedule of claim_upernet_vit_tiny.py (the textured world at 96 px, 64 training images).
Random and pretrained initialisation run this file as it is; only ``--weights`` differs."""
_base_ = ['./claim_upernet_vit_tiny.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='MIMConvMAE',
        name='convmae_tiny',
        img_size=96,
        window_size=0,
        use_rel_pos_bias=False,
        per_block_rel_pos_bias=True,
        init_values=1.0,
        pos_embed_trainable=True,
        drop_path_rate=0.0,
        s3_downsample='conv',
        norm_cfg={{_base_.norm_cfg}}),
    neck=None,
    decode_head=dict(in_channels=[32, 48, 64, 64]),
    auxiliary_head=dict(in_channels=64))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=2, layer_decay_rate=0.9))
