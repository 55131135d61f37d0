# MAE ViT-B linear probing on ImageNet-1K: 68.0 top-1 (paper, TF/TPU; this PyTorch code: 67.8),
# facebookresearch/mae FINETUNE.md table "paper (TF/TPU)" / "this repo (PT/GPU)".
# Source: facebookresearch/mae FINETUNE.md (commit efb2a80), "Linear Probing":
#   --nodes 4 --batch_size 512 --model vit_base_patch16 --cls_token --epochs 90 --blr 0.1 --weight_decay 0.0
# and main_linprobe.py: LARS, warmup 10 epochs, min_lr 0, BatchNorm1d(affine=False, eps=1e-6) + linear head
# on the frozen trunk, RandomResizedCrop(224, bicubic) + flip, no mixup / label smoothing.
# Batch: 512 per GPU x 4 nodes x 8 GPUs = 16384; here written for one 8-GPU node: 512 x accum_iter 4 x 8
# = 16384 (FINETUNE.md: "To run single-node training, follow the instruction in fine-tuning", i.e. accum_iter).
# lr = blr x 16384 / 256 = 0.1 x 64 = 6.4.
protocol = "linprobe"
model = "mae_vit_base"
weights = "mae_pretrain_vit_base"
global_pool = False  # --cls_token
epochs = 90
warmup_epochs = 10
batch_size = 512
accum_iter = 4
blr = 0.1
min_lr = 0.0
weight_decay = 0.0
drop_path = 0.0  # main_linprobe.py builds the model without drop path
