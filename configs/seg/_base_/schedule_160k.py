# The fine-tuning schedule shared by the MAE / SIM / ConvMAE rows: 160k iterations, AdamW
# (lr 1e-4, betas 0.9/0.999, wd 0.05) with layer-wise lr decay, linear warmup over 1500 iterations
# from 1e-6 x lr, then poly (power 1) to 0; mixed precision. Sources:
#   open-mmlab/mmsegmentation configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py
#   Alpha-VL/ConvMAE SEG/configs/convmae/upernet_convmae_base_512_slide_160k_ade20k.py
#   (lr_config: poly, warmup linear 1500 iters, warmup_ratio 1e-6, power 1.0, min_lr 0)
# The rows set paramwise_cfg (number of blocks, decay rate).
# AMP: the papers used fp16 with a dynamic loss scale; we default to bf16 autocast (this project's
# GPU rule), `--cfg-options optim_wrapper.dtype=float16` gives the papers' fp16. Without CUDA,
# tools/train_seg.py falls back to the plain OptimWrapper.
max_iters = 160000
warmup_iters = 1500
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='MIMLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.65))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=16000, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
