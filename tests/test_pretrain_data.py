"""Pretraining data: file discovery, corrupt-image skipping, deterministic samples, the resumable
sampler and SIM's two-view boxes."""
from __future__ import annotations

import os
import random

import pytest
import torch
from pretrain_toy import write_images

from pretrain.data import (
    MAETransform, PretrainDataset, ResumableBatchSampler, SIMTransform, list_images, sim_relative_crop,
)
from pretrain.models.pos_embed import relative_crop


def test_list_images_tree_and_list_file(tmp_path):
    root = write_images(str(tmp_path / "train"), 6, 32)
    os.makedirs(tmp_path / "train" / "a" / "b" / "c")
    (tmp_path / "train" / "a" / "b" / "c" / "deep.JPEG").write_bytes(open(list_images(root)[0], "rb").read())
    (tmp_path / "train" / "notes.txt").write_text("not an image")
    files = list_images(root)
    assert len(files) == 7
    assert any(f.endswith("deep.JPEG") for f in files)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(os.path.relpath(f, tmp_path) + " 3" for f in files[:3]) + "\n\n")
    assert list_images(str(listing)) == [os.path.join(str(tmp_path), os.path.relpath(f, tmp_path)) for f in files[:3]]


def test_missing_or_empty_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a folder of images nor a list file"):
        list_images(str(tmp_path / "nope"))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images found"):
        list_images(str(tmp_path / "empty"))
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="names no images"):
        list_images(str(tmp_path / "empty.txt"))


def test_corrupt_images_are_replaced_and_counted(tmp_path):
    root = write_images(str(tmp_path / "d"), 4, 32)
    (tmp_path / "d" / "class_0" / "img_0000.png").write_bytes(b"not a png at all")  # garbage
    good = open(tmp_path / "d" / "class_1" / "img_0001.png", "rb").read()
    (tmp_path / "d" / "class_1" / "img_0001.png").write_bytes(good[: len(good) // 3])  # truncated
    ds = PretrainDataset(root, MAETransform(32), mode="mae", grid=(2, 2))
    files = ds.files
    bad = [i for i, f in enumerate(files) if f.endswith(("img_0000.png", "img_0001.png"))]
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        samples = [ds[(0, i)] for i in range(len(ds))]
    assert sum(s["skipped"] for s in samples) >= 2
    assert all(samples[i]["skipped"] >= 1 for i in bad)
    assert all(s["image"].shape == (3, 32, 32) for s in samples)


def test_samples_depend_only_on_seed_epoch_index_and_leave_global_rng_alone(tmp_path):
    root = write_images(str(tmp_path / "d"), 3, 48)
    ds = PretrainDataset(root, MAETransform(32), seed=7, mode="mae", grid=(2, 2))
    torch.manual_seed(123)
    random.seed(123)
    expected_torch, expected_py = torch.rand(1), random.random()
    torch.manual_seed(123)
    random.seed(123)
    a = ds[(2, 1)]
    ds[(0, 0)]
    assert torch.equal(torch.rand(1), expected_torch) and random.random() == expected_py
    b = ds[(2, 1)]
    c = ds[(3, 1)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["noise"], b["noise"])
    assert not torch.equal(a["image"], c["image"])


def test_sampler_partitions_one_global_order_for_any_world_size():
    n, bs = 23, 2
    one = ResumableBatchSampler(n, bs, world_size=1, rank=0, seed=3)
    one.set_epoch(5)
    single = list(one)
    ranks = []
    for r in range(2):
        s = ResumableBatchSampler(n, bs, world_size=2, rank=r, seed=3)
        s.set_epoch(5)
        ranks.append(list(s))
    # micro-batch 2k / 2k+1 of one process = step k of rank 0 / rank 1
    assert [b for pair in zip(*ranks) for b in pair] == single[: 2 * len(ranks[0])]
    flat = [i for b in single for _, i in b]
    assert len(set(flat)) == len(flat) == (n // bs) * bs and all(e == 5 for b in single for e, _ in b)
    one.set_epoch(5, start=4)
    assert list(one) == single[4:]
    one.set_epoch(6)
    assert list(one) != single


def test_sim_two_views_and_boxes(tmp_path):
    root = write_images(str(tmp_path / "d"), 2, 80)
    ds = PretrainDataset(root, SIMTransform(32, crop_min=0.2), mode="sim", grid=(2, 2),
                         num_masking_patches=2, min_mask_patches=1)
    s = ds[(0, 0)]
    assert s["x1"].shape == s["x2"].shape == (3, 32, 32)
    assert s["mask"].shape == (2, 2) and int(s["mask"].sum()) == 2
    for box in (s["box1"], s["box2"]):
        top, left, h, w = box.tolist()
        assert 0 <= top and 0 <= left and top + h <= 1 + 1e-6 and left + w <= 1 + 1e-6 and h > 0 and w > 0


def test_sim_relative_crop_matches_the_official_pixel_formula():
    # crops in pixels of the flipped image (the official convention), image 200 x 100 (W x H)
    width, height = 200.0, 100.0
    px1 = torch.tensor([[10.0, 20.0, 50.0, 120.0], [5.0, 30.0, 60.0, 100.0]])  # (i, j, h, w)
    px2 = torch.tensor([[30.0, 5.0, 40.0, 150.0], [0.0, 0.0, 90.0, 190.0]])
    f1, f2 = torch.tensor([False, True]), torch.tensor([True, True])
    official = relative_crop(px1, px2, f1, f2, torch.full((2,), width))

    def to_unflipped_fraction(px, flip):
        left = torch.where(flip, width - px[:, 1] - px[:, 3], px[:, 1])
        return torch.stack([px[:, 0] / height, left / width, px[:, 2] / height, px[:, 3] / width], 1)

    ours = sim_relative_crop(to_unflipped_fraction(px1, f1), to_unflipped_fraction(px2, f2), f1, f2)
    for a, b in zip(ours, official):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
