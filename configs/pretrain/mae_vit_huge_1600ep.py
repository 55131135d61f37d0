"""MAE ViT-H/14, 1600 epochs (MAE paper Table 3: 86.9% fine-tuned at 224).

Source: facebookresearch/mae PRETRAIN.md ("To train ViT-Base or ViT-Huge, set --model
mae_vit_huge"; same hyper-parameters as ViT-L). Patch 14 -> 16 x 16 tokens at 224.
"""
_base_ = "mae_vit_base_800ep.py"
model = "mae_vit_huge"  # official mae_vit_huge_patch14_dec512d8b
epochs = 1600
batch_size = 32  # per GPU; 32 x 16 accum x 8 GPUs = 4096 (activation memory of ViT-H)
accum_iter = 16
