# CPU toy: logistic regression on the frozen features of the images named by a subset list (the toy
# set's subset.txt, written by tools/make_toy_data.py --only cls, in the official 1% format). Not a paper row.
_base_ = "_base_/toy.py"
protocol = "fewshot"
batch_size = 16
lambd = 0.1
