"""Paper row: MAE ViT-B/16 + UperNet, ADE20K, 512x512 crops, 160k iterations, batch 16.
Reported: 48.1 mIoU (MAE paper Table 5; mmsegmentation configs/mae/README.md: 48.13 single-scale).

Source: open-mmlab/mmsegmentation configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py and
configs/_base_/models/upernet_mae.py:
- backbone: ViT-B/16 at 512x512, global attention in all 12 blocks, a relative position bias
  table per block (BEiT style, zero-initialised as MAE), layer scale init 1.0, drop path 0.1,
  features of blocks 3/5/7/11 (zero-based); absolute position embedding resized once to the 32x32
  grid when the checkpoint is loaded;
- neck: Feature2Pyramid rescales 4/2/1/0.5 (2 deconvs, 1 deconv, identity, max-pool) -> strides
  4/8/16/32, 768 ch each; UPerHead 768 ch; FCN auxiliary head on the stride-16 level;
- AdamW lr 1e-4 wd 0.05, layer decay 0.65 over 12 blocks, 1500 warmup iterations, poly; AMP;
- 8 GPUs x 2 images = 16 per iteration (on N GPUs keep N x batch_size = 16);
- test: sliding 512x512 windows with stride 256.
Known difference: mmseg's MAE backbone keeps the class token inside the encoder; ours (ViTDet
style) drops it.

Weights: tools/train_seg.py --weights mae_pretrain_vit_base.pth (the official file; no conversion).
"""
_base_ = ['./_base_/upernet.py', './_base_/ade20k.py', './_base_/runtime.py', './_base_/schedule_160k.py']

model = dict(
    backbone=dict(
        type='MIMViT',
        arch='vit_base_patch16',
        img_size=512,
        pretrain_img_size=512,  # pos_embed stored for 512x512 (the checkpoint's 14x14 is resized on loading)
        global_blocks=tuple(range(12)),  # no windows
        use_rel_pos=False,  # no ViTDet decomposed rel-pos ...
        use_rel_pos_bias=True,  # ... but BEiT's per-block bias table, as mmseg's MAE backbone
        init_values=1.0,
        drop_path_rate=0.1,
        out_indices=(3, 5, 7, 11)),
    neck=dict(type='Feature2Pyramid', embed_dim=768, rescales=[4, 2, 1, 0.5],
              norm_cfg=dict(type='SyncBN', requires_grad=True)),
    decode_head=dict(in_channels=[768, 768, 768, 768], channels=768, num_classes=150),
    auxiliary_head=dict(in_channels=768, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(256, 256)))

optim_wrapper = dict(paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.65))
