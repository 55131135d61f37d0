"""Tiny MAE for CPU tests and the demo: 64 px toy images; overfits 8 of them in ~120 iterations
(seconds on one core). Not a paper recipe (see mae_vit_base_800ep.py for that)."""
model = "mae_vit_tiny"  # 64 px input, 4 x 4 patches of 16
model_kwargs = dict(norm_pix_loss=False)
img_size = 64
crop_scale = (0.5, 1.0)
mask_ratio = 0.75
epochs = 60  # 8 images / batch 4 = 2 iterations per epoch -> 120 iterations
warmup_epochs = 2
batch_size = 4
lr = 1e-3  # absolute lr (toy data; the paper configs use blr)
weight_decay = 0.05
betas = (0.9, 0.95)
num_workers = 0
device = "cpu"
threads = 1
log_interval = 10
vis_every_epochs = 20
tensorboard = False
