# What every CPU toy run shares: the tiny MAE ViT from random init at its pretraining size
# (configs/pretrain/mae_tiny_toy.py), on the generated shapes set (tools/make_toy_data.py --only cls),
# no loader processes. Not a paper row.
model = "mae_vit_tiny"
weights = ""
input_size = 64
num_workers = 0
