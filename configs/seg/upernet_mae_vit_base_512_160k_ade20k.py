"""Paper row: MAE ViT-B/16 + UperNet, ADE20K, 512x512 crops, 160k iterations, batch 16.
Reported: 48.1 mIoU (MAE paper Table 5; mmsegmentation configs/mae/README.md: 48.13 single-scale).

Source: open-mmlab/mmsegmentation configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py and
configs/_base_/models/upernet_mae.py:
- backbone: ViT-B/16 at 512x512, global attention in all 12 blocks over the class token + the 32x32
  patch tokens (mmseg's MAE keeps the class token: with_cls_token=True), a relative position bias
  table per block sized for them ((2*32-1)^2 + 3 entries, BEiT style, zero-initialised as MAE),
  layer scale init 1.0, drop path 0.1, LayerNorm eps 1e-6, no final norm, features of blocks
  3/5/7/11 (zero-based); absolute position embedding resized once to the 32x32 grid when the
  checkpoint is loaded;
- neck: Feature2Pyramid rescales 4/2/1/0.5 (2 deconvs, 1 deconv, identity, max-pool) -> strides
  4/8/16/32, 768 ch each; UPerHead 768 ch; FCN auxiliary head on the stride-16 level;
- AdamW lr 1e-4 betas (0.9, 0.999) wd 0.05, layer decay 0.65 over 12 blocks, 1500 warmup
  iterations, poly; fp16 in the reported run (0.x config); we default to bf16 (_base_/schedule_160k.py);
- 8 GPUs x 2 images = 16 per iteration (on N GPUs keep N x batch_size = 16);
- test: sliding 512x512 windows with stride 341 (configs/mae in mmseg 1.2.2 and in the 0.x release
  the number was reported with).

Weights: the official MAE ViT-B pretraining checkpoint by name (``mae_pretrain_vit_base``, downloaded once
by tools/train_seg.py; no conversion); --weights NAME|PATH picks another, --from-scratch none.
mmseg's released MAE UperNet checkpoints (its own key names) load into this row with --weights.
"""
_base_ = ['./_base_/upernet.py', './_base_/ade20k.py', './_base_/runtime.py', './_base_/schedule_160k.py']

model = dict(
    backbone=dict(
        type='MIMViT',
        name='mae_vit_base',
        pretrained='mae_pretrain_vit_base',  # official name (pretrain.encoders.OFFICIAL_WEIGHTS)
        img_size=512,
        pretrain_img_size=512,  # pos_embed stored for 512x512 (the checkpoint's 14x14 is resized on loading)
        global_blocks=tuple(range(12)),  # no windows
        use_rel_pos=False,  # no ViTDet decomposed rel-pos ...
        use_rel_pos_bias=True,  # ... but BEiT's per-block bias table, as mmseg's MAE backbone
        use_cls_token=True,  # the class token stays in attention, as mmseg's MAE (with_cls_token=True)
        init_values=1.0,
        drop_path_rate=0.1,
        out_indices=(3, 5, 7, 11)),
    neck=dict(type='Feature2Pyramid', embed_dim=768, rescales=[4, 2, 1, 0.5],
              norm_cfg=dict(type='SyncBN', requires_grad=True)),
    decode_head=dict(in_channels=[768, 768, 768, 768], channels=768, num_classes=150),
    auxiliary_head=dict(in_channels=768, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))

optim_wrapper = dict(paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.65))
