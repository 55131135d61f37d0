"""kNN classifier (DINO's), top-k accuracy, the kNN monitor, labelled folders and the labelled toy set."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from pretrain.knn import KNNMonitor, extract_features, knn_scores, topk_accuracy
from pretrain.labelled_data import LabelledImages, UnknownClassError, UnreadableImageError, train_classes
from pretrain.toy_data import NUM_TOY_CLASSES, toy_class, write_classification_set


def official_knn(train_features, train_labels, test_features, k, T, num_classes):
    """facebookresearch/dino eval_knn.py knn_classifier's vote (normalised features, one chunk),
    re-expressed as a reference: returns the per-class probs it sorts."""
    train_features = torch.nn.functional.normalize(train_features, dim=1, p=2).t()
    test_features = torch.nn.functional.normalize(test_features, dim=1, p=2)
    batch_size = test_features.shape[0]
    similarity = torch.mm(test_features, train_features)
    distances, indices = similarity.topk(k, largest=True, sorted=True)
    candidates = train_labels.view(1, -1).expand(batch_size, -1)
    retrieved_neighbors = torch.gather(candidates, 1, indices)
    retrieval_one_hot = torch.zeros(batch_size * k, num_classes)
    retrieval_one_hot.scatter_(1, retrieved_neighbors.view(-1, 1), 1)
    distances_transform = distances.clone().div_(T).exp_()
    return torch.sum(torch.mul(retrieval_one_hot.view(batch_size, -1, num_classes),
                               distances_transform.view(batch_size, -1, 1)), 1)


def test_knn_scores_equal_dino():
    g = torch.Generator().manual_seed(0)
    train, labels = torch.randn(300, 16, generator=g), torch.randint(0, 7, (300,), generator=g)
    query = torch.randn(50, 16, generator=g)
    ours = knn_scores(train, labels, query, 7, k=20, temperature=0.07, chunk=16)  # several chunks
    torch.testing.assert_close(ours, official_knn(train, labels, query, 20, 0.07, 7), rtol=1e-5, atol=1e-5)


def test_knn_k_clipped_and_nearest_wins():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    labels = torch.tensor([0, 1, 1])
    scores = knn_scores(train, labels, torch.tensor([[1.0, 0.02], [0.05, 1.0]]), 3, k=20, temperature=0.01)
    assert scores.shape == (2, 3)
    assert scores.argmax(1).tolist() == [0, 1]
    assert scores[:, 2].eq(0).all()  # no training sample of class 2: no votes


def test_topk_accuracy():
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    top1, top2, top5 = topk_accuracy(scores, labels, (1, 2, 5))
    assert top1 == pytest.approx(100 / 3)
    assert top2 == pytest.approx(200 / 3)
    assert top5 == 100.0  # k clipped to the 3 classes
    with pytest.raises(ValueError):
        topk_accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


def test_extract_features_concatenates_batches():
    loader = [(torch.ones(2, 3, 4, 4), torch.tensor([0, 1])), (2 * torch.ones(1, 3, 4, 4), torch.tensor([2]))]
    feats, labels = extract_features(lambda x: x.flatten(1)[:, :5].double(), loader, "cpu")
    assert feats.dtype == torch.float32 and feats.shape == (3, 5)
    assert labels.tolist() == [0, 1, 2] and feats[2].eq(2).all()


# ---- labelled folders -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_set(tmp_path_factory):
    return str(write_classification_set(tmp_path_factory.mktemp("cls"), num_classes=4, per_class_train=6,
                                        per_class_val=3, size=32, seed=0, subset_per_class=2))


def test_toy_set_layout_and_labels(toy_set):
    train, val = LabelledImages(toy_set, "train"), LabelledImages(toy_set, "val")
    assert train.num_classes == val.num_classes == 4 and len(train) == 24 and len(val) == 12
    assert train.classes == train_classes(toy_set) == sorted(os.listdir(os.path.join(toy_set, "train")))
    img, label = val[11]
    assert img.size == (32, 32) and label == 3
    assert len({toy_class(i) for i in range(NUM_TOY_CLASSES)}) == NUM_TOY_CLASSES  # distinct (shape, colour)


def test_subset_list_in_official_format(toy_set):
    subset = LabelledImages(toy_set, "train", subset_file=os.path.join(toy_set, "subset.txt"))
    assert len(subset) == 8 and sorted(subset.targets) == [0, 0, 1, 1, 2, 2, 3, 3]
    for path, label in subset.samples:  # official: train/<name.split('_')[0]>/<name>
        name = os.path.basename(path)
        assert os.path.basename(os.path.dirname(path)) == name.split("_")[0] == subset.classes[label]


def test_subset_list_errors(toy_set, tmp_path):
    bad_class = tmp_path / "bad_class.txt"
    bad_class.write_text("nXX-none_000000.JPEG\n")
    with pytest.raises(UnknownClassError):
        LabelledImages(toy_set, "train", subset_file=bad_class)
    missing = tmp_path / "missing.txt"
    missing.write_text(f"{train_classes(toy_set)[0]}_999999.JPEG\n")
    with pytest.raises(FileNotFoundError):
        LabelledImages(toy_set, "train", subset_file=missing)


def test_val_class_absent_from_train_is_an_error(tmp_path):
    root = write_classification_set(tmp_path, num_classes=2, per_class_train=1, per_class_val=1, size=16)
    os.rename(root / "train" / "n01-disk-green", root / "n01-moved")
    with pytest.raises(UnknownClassError, match="n01-disk-green"):
        LabelledImages(root, "val")
    assert len(LabelledImages(root, "train")) == 1  # train itself is fine


def test_missing_split_and_unreadable_image(tmp_path):
    with pytest.raises(FileNotFoundError):
        LabelledImages(tmp_path, "train")
    root = write_classification_set(tmp_path / "d", num_classes=1, per_class_train=2, per_class_val=1, size=16)
    broken = root / "train" / "n00-square-red" / "n00-square-red_000001.JPEG"
    broken.write_bytes(b"not an image")
    data = LabelledImages(root, "train")
    with pytest.raises(UnreadableImageError, match="000001"):
        data[1]


def test_monitor_reports_high_accuracy_for_informative_features(toy_set):
    monitor = KNNMonitor(toy_set, img_size=32, k=5, batch_size=8)

    def colour_and_shape(images):  # a hand-made feature: mean colour + coarse layout
        return torch.cat([images.mean((2, 3)), torch.nn.functional.avg_pool2d(images, 8).flatten(1)], 1)

    out = monitor(colour_and_shape, "cpu")
    assert set(out) == {"knn_top1", "knn_top5", "knn_seconds"}
    assert out["knn_top1"] >= 75.0 and out["knn_top5"] == 100.0 and out["knn_seconds"] > 0
    noise = monitor(lambda x: torch.randn(x.shape[0], 8, generator=torch.Generator().manual_seed(x.shape[0])), "cpu")
    assert noise["knn_top1"] < out["knn_top1"]


def test_render_is_deterministic(tmp_path):
    a = write_classification_set(tmp_path / "a", num_classes=2, per_class_train=1, per_class_val=1, size=16, seed=3)
    b = write_classification_set(tmp_path / "b", num_classes=2, per_class_train=1, per_class_val=1, size=16, seed=3)
    name = "train/n01-disk-green/n01-disk-green_000000.JPEG"
    assert np.array_equal(np.asarray(Image.open(a / name)), np.asarray(Image.open(b / name)))


def test_make_toy_data_only_cls(tmp_path, capsys):
    from tool_module import load_tool

    load_tool("make_toy_data").main(["--out", str(tmp_path), "--only", "cls", "--num-classes", "5",
                                     "--num-train", "10", "--num-val", "5", "--size", "24"])
    assert sorted(os.listdir(tmp_path)) == ["cls"]
    train, val = LabelledImages(tmp_path / "cls", "train"), LabelledImages(tmp_path / "cls", "val")
    assert (train.num_classes, len(train), len(val)) == (5, 10, 5)
    assert (tmp_path / "cls" / "subset.txt").read_text().count("\n") == 5
