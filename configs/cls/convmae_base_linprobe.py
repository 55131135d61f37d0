# ConvMAE-B linear probing on ImageNet-1K: 70.9 top-1 (Alpha-VL/ConvMAE README "Main Results on
# ImageNet-1K", LIN acc@1).
# Source: Alpha-VL/ConvMAE FINETUNE.md (commit 4c97b4c), "Linear Probing", the 4-node command:
#   --nodes 4 --batch_size 128 --model convvit_base_patch16 --global_pool --epochs 90 --blr 0.1 --weight_decay 0.0
# (ConvMAE has no class token: the average of the last-stage tokens + fc_norm feeds the BN + linear head);
# main_linprobe.py: LARS, warmup 10, min_lr 0, RandomResizedCrop(224, bicubic) + flip.
# Batch: 128 per GPU x 4 nodes x 8 GPUs = 4096; here written for one 8-GPU node as FINETUNE.md's
# single-node command: 512 x 8 = 4096. lr = blr x 4096 / 256 = 0.1 x 16 = 1.6.
protocol = "linprobe"
model = "convmae_base"
weights = "convmae_base"
global_pool = True
epochs = 90
warmup_epochs = 10
batch_size = 512
accum_iter = 1
blr = 0.1
min_lr = 0.0
weight_decay = 0.0
drop_path = 0.0
