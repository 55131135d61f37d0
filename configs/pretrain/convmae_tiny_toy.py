"""Tiny ConvMAE for CPU tests and the demo (64 px toy images). Not a paper recipe
(see convmae_base_1600ep.py)."""
_base_ = "mae_tiny_toy.py"
model = "convmae_tiny"  # conv stages 32/48 channels, 2 ViT blocks of 64; 4 x 4 stage-3 tokens at 64 px
model_kwargs = dict(img_size=64, norm_pix_loss=False)
lr = 2e-3  # ConvMAE's conv stages learn the toy scenes more slowly at 1e-3
epochs = 80
