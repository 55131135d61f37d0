# CPU toy: weighted kNN (k 20, T 0.07, DINO's) on the tiny MAE ViT's frozen class token (after the
# encoder's final norm, as DINO's eval_knn.py), batches as the few-shot toy. Not a paper row.
_base_ = "toy_cls_fewshot.py"
protocol = "knn"
global_pool = False
