"""Tiny SIM for CPU tests and the demo (64 px toy images, 4 x 4 patches, 6 masked in blocks >= 2).
Not a paper recipe (see sim_vit_base_1600ep.py)."""
_base_ = "mae_tiny_toy.py"
model = "sim_vit_tiny"
model_kwargs = dict()
crop_min = 0.5
num_mask_patches = 6
min_mask_patches = 2
mm = 0.99
mm_schedule = "cosine"
clip_grad = 1.0
