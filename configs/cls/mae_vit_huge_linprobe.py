# MAE ViT-H/14 linear probing on ImageNet-1K: 76.6 top-1 (paper, TF/TPU; this PyTorch code: 77.2),
# facebookresearch/mae FINETUNE.md table.
# Source: facebookresearch/mae FINETUNE.md (commit efb2a80), "Linear Probing": the ViT-B command with
# "--model vit_huge_patch14 ... It is sufficient to train 50 epochs --epochs 50".
# Batch: 512 x accum_iter 4 x 8 GPUs = 16384 (as ViT-B). lr = blr x 16384 / 256 = 0.1 x 64 = 6.4.
_base_ = "mae_vit_base_linprobe.py"
model = "mae_vit_huge"
weights = "mae_pretrain_vit_huge"
epochs = 50
