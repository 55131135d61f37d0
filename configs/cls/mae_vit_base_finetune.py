# MAE ViT-B fine-tuning on ImageNet-1K: 83.6 top-1 (paper, facebookresearch/mae README; the released
# mae_finetuned_vit_base.pth gives 83.664, FINETUNE.md).
# Source: facebookresearch/mae FINETUNE.md (commit efb2a80), "Fine-tuning", ViT-Base command:
#   --batch_size 32 --model vit_base_patch16 --epochs 100 --blr 5e-4 --layer_decay 0.65
#   --weight_decay 0.05 --drop_path 0.1 --reprob 0.25 --mixup 0.8 --cutmix 1.0
# Everything else is a main_finetune.py default (warmup 5 epochs, min_lr 1e-6, smoothing 0.1,
# aa rand-m9-mstd0.5-inc1, global_pool), which ClsConfig's defaults are.
# Batch: 32 per GPU x accum_iter 4 x 8 GPUs = 1024 (the single-node command; 4 nodes x 8 GPUs with
# accum_iter 1 is the same 1024). lr = blr x 1024 / 256 = 5e-4 x 4 = 2e-3.
protocol = "finetune"
model = "mae_vit_base"
weights = "mae_pretrain_vit_base"
epochs = 100
batch_size = 32
accum_iter = 4
blr = 5e-4
layer_decay = 0.65
weight_decay = 0.05
drop_path = 0.1
reprob = 0.25
mixup = 0.8
cutmix = 1.0
