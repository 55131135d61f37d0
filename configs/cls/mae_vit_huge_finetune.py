# MAE ViT-H/14 fine-tuning on ImageNet-1K at 224 px: 86.9 top-1 (paper, facebookresearch/mae README;
# the released mae_finetuned_vit_huge.pth gives 86.928, FINETUNE.md).
# Source: facebookresearch/mae FINETUNE.md (commit efb2a80), "Script for ViT-Huge":
#   --nodes 8 --batch_size 16 --model vit_huge_patch14 --epochs 50 --blr 1e-3 --layer_decay 0.75
#   --weight_decay 0.05 --drop_path 0.3 --reprob 0.25 --mixup 0.8 --cutmix 1.0
# Batch: 16 per GPU x 8 nodes x 8 GPUs = 1024; here written for one 8-GPU node: 16 x accum_iter 8 x 8
# = 1024 (on 64 GPUs pass accum_iter=1). lr = blr x 1024 / 256 = 1e-3 x 4 = 4e-3.
# Derived: the ViT-L command (mae_vit_large_finetune.py) with ViT-H, 16 per GPU and drop path 0.3.
_base_ = "mae_vit_large_finetune.py"
model = "mae_vit_huge"
weights = "mae_pretrain_vit_huge"
batch_size = 16
accum_iter = 8
drop_path = 0.3
