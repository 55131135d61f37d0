# CPU toy: logistic regression on the frozen features of the images named by a subset list (the toy
# set's subset.txt, written by tools/make_toy_data.py --only cls, in the official 1% format). Not a paper row.
protocol = "fewshot"
model = "mae_vit_tiny"
weights = ""
input_size = 64  # the tiny MAE's pretraining size (configs/pretrain/mae_tiny_toy.py)
batch_size = 16
lambd = 0.1
num_workers = 0
