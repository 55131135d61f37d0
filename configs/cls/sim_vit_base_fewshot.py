# SIM (SiameseIM) ViT-B few-shot classification with 1% of the ImageNet-1K labels: 65.1 top-1
# (OpenGVLab/Siamese-Image-Modeling README "Main Results", column "1% FT"; docs/few_shot.md: a linear
# classifier on frozen features following MSN's logistic_eval.py, "without tuning model's parameters").
# Source: OpenGVLab/Siamese-Image-Modeling configs/few-shot/dist_fewshot_sim_base.sh (commit bbdec30):
#   main_logistic.py --subset-path imagenet_subset1/1percent.txt --model-name vit_base_patch16
#   --penalty l2 --lambd 0.1
# main_logistic.py: features of Resize(256) + CenterCrop(224) images, standardised, multinomial logistic
# regression without intercept (cyanure), lambd divided by the number of training images.
# 1percent.txt: 12810 file names (about 13 per class). Pass subset_list=/path/to/1percent.txt.
protocol = "fewshot"
model = "sim_vit_base"
weights = "sim_vit_base"
lambd = 0.1
batch_size = 128  # feature extraction only
