"""Paper row: ConvMAE-B + UperNet, ADE20K, 512x512 crops, 160k iterations, batch 16.
Reported: 51.7 mIoU (Alpha-VL/ConvMAE README "Main Results on ADE20K"; SEG/SEGMENTATION.md: 51.66).

Source: Alpha-VL/ConvMAE SEG/configs/convmae/upernet_convmae_base_512_slide_160k_ade20k.py with
SEG/backbone/convmae.py, SEG/configs/_base_/models/upernet.py and schedules/schedule_160k.py:
- backbone: ConvMAE-B (dims 256/384/768, depths 2/2/11, 12 heads) at img sizes 512/128/64, global
  attention in all 11 stage-3 blocks with a relative position bias table per block, absolute
  position embedding (trainable, resized from the pretraining's 14x14 to 32x32), layer scale
  init 1.0, drop path 0.2; outputs E1-E3 and E4 = Conv2d(768, 768, 3, stride 2) + SyncBN + GELU of
  E3 (the released ``self.fpn``) -> 256/384/768/768 ch at strides 4/8/16/32; no neck;
- UPerHead in 256/384/768/768, 768 ch; FCN auxiliary head on E3 (768 ch in, 256 ch);
- AdamW lr 1e-4 betas (0.9, 0.999) wd 0.05, layer decay 0.75 over 11 blocks (blocks1/2 and the
  patch embeddings share the lowest lr), poly (power 1, min 0) with 1500 linear warmup iterations
  (ratio 1e-6); fp16 (apex); 8 GPUs x 2 images = 16 per iteration;
- test: sliding 512x512 windows with stride 341.

Weights: the official ConvMAE-B pretraining checkpoint by name (``convmae_base``; the decoder and
stage*_output_decode are dropped and reported); --weights NAME|PATH picks another, --from-scratch none.
"""
_base_ = ['./_base_/upernet.py', './_base_/ade20k.py', './_base_/runtime.py', './_base_/schedule_160k.py']

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        type='MIMConvMAE',
        name='convmae_base',
        pretrained='convmae_base',  # official name (pretrain.encoders.OFFICIAL_WEIGHTS)
        img_size=512,
        window_size=0,  # global attention in every stage-3 block
        use_rel_pos_bias=False,  # not the detection backbone's two shared tables ...
        per_block_rel_pos_bias=True,  # ... but one table per block, as the released SEG backbone
        init_values=1.0,
        pos_embed_trainable=True,
        drop_path_rate=0.2,
        s3_downsample='conv',
        norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[256, 384, 768, 768], channels=768, num_classes=150),
    auxiliary_head=dict(in_channels=768, channels=256, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))

optim_wrapper = dict(paramwise_cfg=dict(num_layers=11, layer_decay_rate=0.75))
