# ConvMAE-B fine-tuning on ImageNet-1K: 85.0 top-1 (Alpha-VL/ConvMAE README "Main Results on
# ImageNet-1K"; FINETUNE.md: the released fine-tuned model evaluates to Acc@1 84.982).
# Source: Alpha-VL/ConvMAE FINETUNE.md (commit 4c97b4c), single-node command:
#   --batch_size 128 --model convvit_base_patch16 --epochs 100 --blr 5e-4 --layer_decay 0.65
#   --weight_decay 0.05 --drop_path 0.1 --mixup 0.8 --cutmix 1.0 --reprob 0.25
# other values: main_finetune.py defaults (warmup 5, min_lr 1e-6, smoothing 0.1, RandAugment, global_pool).
# Batch: 128 per GPU x 8 GPUs = 1024 (the 4-node command: 32 x 32 GPUs = 1024).
# lr = blr x 1024 / 256 = 5e-4 x 4 = 2e-3.
# Derived: MAE's ViT-B command (mae_vit_base_finetune.py) with ConvMAE-B, 128 per GPU and no accumulation.
_base_ = "mae_vit_base_finetune.py"
model = "convmae_base"
weights = "convmae_base"
batch_size = 128
accum_iter = 1
