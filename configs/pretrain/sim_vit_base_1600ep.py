"""SIM ViT-B/16, 1600 epochs on ImageNet-1K (Tao et al., "Siamese Image Modeling for Self-Supervised
Vision Representation Learning", CVPR 2023).

Source: OpenGVLab/Siamese-Image-Modeling configs/pretrain/dist_sim_base_1600ep.sh: total batch
4096, 1600 epochs, 40 warmup epochs, --crop_min 0.08, --with_blockwise_mask
--blockwise_num_masking_patches 118 (of 14 x 14), --blr 6.25e-5 (lr = 6.25e-5 x 4096 / 256 = 1e-3),
--weight_decay 0.05, --mm 0.995 --mmschedule cosine (to 1), --clip_grad 1.0, --loss_type sim,
--neg_weight 0.02, --decoder_embed_dim 768; main_pretrain.py defaults: projector_depth 2,
predictor_depth 4, beta2 0.95, frozen patch embedding, fp16 AMP (we default to bf16 on GPU),
timm param_groups_weight_decay (no decay on 1-d parameters), SyncBN under DDP; augmentation
DataAugmentationForSIM (pretrain/models/sim/views.py SIMTransform); block-wise masks from util/datasets.py
(BEiT generator, min 16 patches per block, fixed count).
"""
model = "sim_vit_base"  # decoder 768-d, projector 2, predictor 4 blocks, neg_weight 0.02
model_kwargs = dict()
img_size = 224
crop_min = 0.08
num_mask_patches = 118
min_mask_patches = 16
epochs = 1600
warmup_epochs = 40
batch_size = 64  # per GPU
accum_iter = 8  # 64 x 8 x 8 GPUs = 4096 (official: 512 / nodes per GPU, 8 GPUs per node)
blr = 6.25e-5
min_lr = 0.0
weight_decay = 0.05
betas = (0.9, 0.95)
clip_grad = 1.0
mm = 0.995
mm_schedule = "cosine"
no_wd_tokens = False
num_workers = 10
log_interval = 50
save_interval = 1000
