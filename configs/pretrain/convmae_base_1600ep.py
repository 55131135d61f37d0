"""ConvMAE-B, 1600 epochs on ImageNet-1K (Gao et al., "ConvMAE: Masked Convolution Meets Masked
Autoencoders", NeurIPS 2022).

Source: Alpha-VL/ConvMAE PRETRAIN.md (3 nodes x 8 GPUs, --batch_size 128 -> effective batch 3072,
--model convmae_convvit_base_patch16 --norm_pix_loss --mask_ratio 0.75 --epochs 1600
--warmup_epochs 40 --blr 1.5e-4 --weight_decay 0.05) and main_pretrain.py (RandomResizedCrop(224,
scale=(0.2, 1.0), bicubic) + flip, AdamW betas (0.9, 0.95), add_weight_decay: no decay on 1-d
parameters). lr = 1.5e-4 x 3072 / 256 = 1.8e-3. The mask (75% of the 14 x 14 stage-3 tokens) is
upsampled to the conv stages inside the model.
"""
_base_ = "mae_vit_base_800ep.py"
model = "convmae_base"  # official convmae_convvit_base_patch16
model_kwargs = dict(norm_pix_loss=True)
epochs = 1600
batch_size = 128  # per GPU
accum_iter = 3  # 128 x 3 x 8 GPUs = 3072 (official: 128 x 24 GPUs)
