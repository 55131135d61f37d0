# SIM (SiameseIM) ViT-B linear probing on ImageNet-1K: 78.0 top-1 (OpenGVLab/Siamese-Image-Modeling
# README "Main Results", column LIN).
# Source: OpenGVLab/Siamese-Image-Modeling configs/linprobe/dist_linprobe_sim_base.sh (commit bbdec30):
#   TOTAL_BATCH_SIZE=16384, BATCH_SIZE=TOTAL/NNODES/8, --model vit_base_patch16 --epochs 90 --blr 0.1
#   --weight_decay 0.0 --global_pool
# (SIM probes the average of the patch tokens + fc_norm, not the class token as MAE does); its
# main_linprobe.py: LARS, warmup 10, min_lr 0, RandomResizedCrop(224, bicubic) + flip.
# Batch: 16384 / 2 nodes / 8 GPUs = 1024 per GPU; here written for one 8-GPU node with accumulation:
# 512 x accum_iter 4 x 8 = 16384. lr = blr x 16384 / 256 = 0.1 x 64 = 6.4.
# Derived: MAE's ViT-B recipe (mae_vit_base_linprobe.py, the same 512 x accum_iter 4) with SIM's weights and
# the pooled tokens.
_base_ = "mae_vit_base_linprobe.py"
model = "sim_vit_base"
weights = "sim_vit_base"
global_pool = True
