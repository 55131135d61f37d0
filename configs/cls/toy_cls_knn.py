# CPU toy: weighted kNN (k 20, T 0.07, DINO's) on the tiny MAE ViT's frozen class token (after the
# encoder's final norm, as DINO's eval_knn.py). Not a paper row.
protocol = "knn"
model = "mae_vit_tiny"
global_pool = False
weights = ""
input_size = 64  # the tiny MAE's pretraining size (configs/pretrain/mae_tiny_toy.py)
batch_size = 16
num_workers = 0
