"""Toy row (tests and CPU demo, not a paper row): the ConvMAE recipe (upernet_convmae_base_512_160k_ade20k.py:
all-global stage 3 with per-block rel-pos bias, layer scale, conv E4, no neck) shrunk to the
32/48/64-d ConvMAE-tiny, on the toy set and schedule of toy_upernet_vit_tiny.py.

    python tools/train_seg.py --backbone convmae_tiny --dataset toy
"""
_base_ = ['./toy_upernet_vit_tiny.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='MIMConvMAE',
        name='convmae_tiny',
        img_size=128,
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
