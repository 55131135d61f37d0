# CPU toy: linear probe (BN + linear head, LARS) on the frozen tiny MAE ViT's class token. Not a paper row.
_base_ = "toy_cls_finetune.py"
protocol = "linprobe"
global_pool = False
lr = 6.4  # the paper rows' absolute lr (0.1 x 16384 / 256): LARS moves each weight by ~lr x 0.001 x |w| per step,
# so the blr scaling at this batch of 8 (lr 0.003) would leave the head where it started
warmup_epochs = 1
min_lr = 0.0
weight_decay = 0.0
