# ConvMAE-B linear probing on ImageNet-1K: 70.9 top-1 (Alpha-VL/ConvMAE README "Main Results on
# ImageNet-1K", LIN acc@1).
# Source: Alpha-VL/ConvMAE FINETUNE.md (commit 4c97b4c), "Linear Probing", the 4-node command:
#   --nodes 4 --batch_size 128 --model convvit_base_patch16 --global_pool --epochs 90 --blr 0.1 --weight_decay 0.0
# (ConvMAE has no class token: the average of the last-stage tokens + fc_norm feeds the BN + linear head);
# main_linprobe.py: LARS, warmup 10, min_lr 0, RandomResizedCrop(224, bicubic) + flip.
# Batch: 128 per GPU x 4 nodes x 8 GPUs = 4096; here written for one 8-GPU node as FINETUNE.md's
# single-node command: 512 x 8 = 4096. lr = blr x 4096 / 256 = 0.1 x 16 = 1.6.
# Derived: MAE's ViT-B recipe (mae_vit_base_linprobe.py) with ConvMAE-B, the pooled tokens and no accumulation.
_base_ = "mae_vit_base_linprobe.py"
model = "convmae_base"
weights = "convmae_base"
global_pool = True
accum_iter = 1
