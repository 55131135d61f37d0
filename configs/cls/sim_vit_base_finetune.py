# SIM (SiameseIM) ViT-B fine-tuning on ImageNet-1K: 84.1 top-1 (OpenGVLab/Siamese-Image-Modeling
# README "Main Results", column FT; the released fine-tuned file is docs/checkpoints.md's
# sim_base_1600ep_finetune.pth).
# Source: OpenGVLab/Siamese-Image-Modeling configs/finetune/dist_finetune_sim_base.sh (commit bbdec30):
#   TOTAL_BATCH_SIZE=1024, BATCH_SIZE=TOTAL/NNODES/8, --model vit_base_patch16 --epochs 100
#   --blr 2.5e-4 --layer_decay 0.65 --weight_decay 0.05 --drop_path 0.1 --reprob 0.25 --mixup 0.8 --cutmix 1.0
# other values: its main_finetune.py defaults (warmup 5, min_lr 1e-6, smoothing 0.1, RandAugment, global_pool).
# Batch: 1024 / 1 node / 8 GPUs = 128 per GPU x 8 = 1024. lr = blr x 1024 / 256 = 2.5e-4 x 4 = 1e-3.
# Derived: MAE's ViT-B command (mae_vit_base_finetune.py) with SIM's weights, 128 per GPU, no accumulation and
# half the blr.
_base_ = "mae_vit_base_finetune.py"
model = "sim_vit_base"
weights = "sim_vit_base"
batch_size = 128
accum_iter = 1
blr = 2.5e-4
