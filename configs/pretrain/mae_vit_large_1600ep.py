"""MAE ViT-L/16, 1600 epochs (MAE paper Table 1d / Sec. 4: 1600-epoch ViT-L reaches 85.9% fine-tuned).

Source: facebookresearch/mae PRETRAIN.md, which gives ViT-L as the recommended default with the same
hyper-parameters as ViT-B (batch 4096, blr 1.5e-4, wd 0.05, 40 warmup epochs, norm_pix_loss) at 800
epochs; the paper's longest schedule is 1600 epochs.
"""
_base_ = "mae_vit_base_800ep.py"
model = "mae_vit_large"  # official mae_vit_large_patch16_dec512d8b
epochs = 1600
