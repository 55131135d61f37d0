# CPU toy: fine-tune the tiny MAE ViT on the generated shapes set (tools/make_toy_data.py --only cls),
# the fine-tuning recipe's pieces (layer decay, drop path, RandAugment, random erasing, label smoothing)
# at a size that trains in about a minute on one core. Not a paper row.
_base_ = "_base_/toy.py"
protocol = "finetune"
epochs = 12
warmup_epochs = 1
batch_size = 8
blr = 2e-3
layer_decay = 0.75
weight_decay = 0.05
drop_path = 0.0
reprob = 0.0
aa = ""
log_interval = 5
