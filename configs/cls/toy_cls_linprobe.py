# CPU toy: linear probe (BN + linear head, LARS) on the frozen tiny MAE ViT's class token. Not a paper row.
_base_ = "toy_cls_finetune.py"
protocol = "linprobe"
global_pool = False
blr = 0.1
warmup_epochs = 1
min_lr = 0.0
weight_decay = 0.0
