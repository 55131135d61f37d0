"""MAE ViT-B/16, 800 epochs on ImageNet-1K (He et al., "Masked Autoencoders Are Scalable Vision
Learners", CVPR 2022).

Source: facebookresearch/mae PRETRAIN.md (the command) and main_pretrain.py (defaults, transform,
optimizer): batch 64 per GPU x 64 GPUs = 4096, blr 1.5e-4, lr = blr x 4096 / 256 = 2.4e-3, AdamW
betas (0.9, 0.95), weight decay 0.05 (not on 1-d parameters: timm add_weight_decay), 40 warmup
epochs then half-cycle cosine to 0 (util/lr_sched.py), mask ratio 0.75, --norm_pix_loss,
RandomResizedCrop(224, scale=(0.2, 1.0), bicubic) + horizontal flip, fp16 AMP (we default to bf16
on GPU). Paper Table 1 (ViT-L) ablates 800 epochs; the released ViT-B checkpoint is 1600 epochs
(mae_vit_base_1600ep = this file with epochs = 1600).

Effective batch = batch_size x accum_iter x GPUs: accum_iter 8 gives 4096 on one node of 8 GPUs;
use accum_iter=1 on 64 GPUs. lr always follows the actual effective batch.
"""
model = "mae_vit_base"  # official mae_vit_base_patch16_dec512d8b
model_kwargs = dict(norm_pix_loss=True)
img_size = 224
crop_scale = (0.2, 1.0)
hflip = 0.5
mask_ratio = 0.75
epochs = 800
warmup_epochs = 40
batch_size = 64  # per GPU
accum_iter = 8  # 64 x 8 x 8 GPUs = 4096
blr = 1.5e-4
min_lr = 0.0
weight_decay = 0.05
betas = (0.9, 0.95)
clip_grad = None  # the official MAE pretraining does not clip
no_wd_tokens = False  # official: only 1-d parameters (norms, biases) skip weight decay
num_workers = 10
log_interval = 50
save_interval = 1000  # mid-epoch checkpoints every 1000 iterations (~3 per epoch at 4096)
vis_every_epochs = 20
