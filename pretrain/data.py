"""Pretraining data: an image folder tree or a list file, the MAE/ConvMAE and SIM augmentations, and a
resumable distributed batch sampler.

Determinism (what makes mid-epoch resume bit-identical and DDP equal to gradient accumulation):
- ``ResumableBatchSampler`` draws one permutation per epoch from (seed, epoch) and hands micro-batch
  ``b`` of rank ``r`` the slice ``perm[(b * world + r) * B : ... + B]``; it can start at any batch.
- it yields ``(epoch, index)`` pairs, and ``PretrainDataset`` seeds every sample's augmentation (and
  its mask noise) from (seed, epoch, index), with the global RNGs saved and restored around it. A
  sample therefore does not depend on the worker, the rank or what came before it.
- an unreadable image is replaced by the next readable one (a deterministic choice); the sample
  carries ``skipped`` (how many files were passed over) so the training log can count them across
  workers and ranks.
"""
from __future__ import annotations

import os
import random
import warnings
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter, ImageOps

from pretrain.models.masking import block_wise_mask
from pretrain.models.pos_embed import RelativeCrop, relative_crop

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_REPLACEMENTS = 50  # consecutive unreadable files before a sample gives up


# ------------------------------------------------------------------------------------------ files
def list_images(source: str | os.PathLike) -> list[str]:
    """All image files under a folder (any depth, ImageNet's ``train/<class>/x.JPEG`` included),
    sorted, or the paths listed in a text file (one per line, relative to the file's folder; anything
    after the first whitespace, e.g. a label, is ignored)."""
    source = os.fspath(source)
    if os.path.isfile(source):
        root = os.path.dirname(os.path.abspath(source))
        with open(source, encoding="utf-8") as f:
            rows = [line.split()[0] for line in f if line.strip() and not line.lstrip().startswith("#")]
        files = [p if os.path.isabs(p) else os.path.join(root, p) for p in rows]
        if not files:
            raise ValueError(f"the list file {source} names no images; expected one image path per line")
        return files
    if not os.path.isdir(source):
        raise FileNotFoundError(
            f"data not found: {source!r} is neither a folder of images nor a list file; pass --data DIR "
            "(a folder tree of images, e.g. ImageNet's train/) or a text file with one image path per line"
        )
    files = []
    for dirpath, dirnames, filenames in os.walk(source, followlinks=True):
        dirnames.sort()
        files += [os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not files:
        raise ValueError(
            f"no images found under {source!r} (searched all sub-folders for {', '.join(IMAGE_EXTENSIONS)}); "
            "point --data at the folder that holds the images"
        )
    return files


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample of one epoch, independent of order, worker and rank."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


@contextmanager
def seeded_rngs(seed: int):
    """Seed torch's and Python's global RNGs (torchvision transforms use them) for the block and put
    the callers' states back afterwards."""
    py_state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)


# ------------------------------------------------------------------------------------------ transforms
def normalize_to_tensor() -> T.Compose:
    return T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class MAETransform:
    """MAE/ConvMAE: RandomResizedCrop(size, scale, bicubic) + horizontal flip + ImageNet normalisation
    (facebookresearch/mae main_pretrain.py). Returns {'image': [3, size, size]}."""

    def __init__(self, img_size: int = 224, scale: Sequence[float] = (0.2, 1.0), hflip: float = 0.5):
        self.transform = T.Compose([
            T.RandomResizedCrop(img_size, scale=tuple(scale), interpolation=T.InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(hflip),
            normalize_to_tensor(),
        ])

    def __call__(self, img: Image.Image) -> dict:
        return {"image": self.transform(img)}


class GaussianBlur:
    """SimCLR's blur with sigma ~ U(0.1, 2.0) (OpenGVLab/Siamese-Image-Modeling util/augmentation.py)."""

    def __init__(self, sigma: Sequence[float] = (0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, img: Image.Image) -> Image.Image:
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


class Solarize:
    def __call__(self, img: Image.Image) -> Image.Image:
        return ImageOps.solarize(img)


class SIMTransform:
    """SIM's two views (OpenGVLab/Siamese-Image-Modeling main_pretrain.py DataAugmentationForSIM):
    each view flips (p=0.5) and then takes its own RandomResizedCrop(size, scale=(crop_min, 1), bicubic);
    colour: jitter(0.4, 0.4, 0.2, 0.1) p=0.8, grayscale p=0.2, blur p=1.0 (view 1) / p=0.1 + solarize
    p=0.2 (view 2); ImageNet normalisation.

    Returns {'x1', 'x2': [3, size, size], 'box1', 'box2': [4] = (top, left, height, width) of each
    crop in the original (unflipped) image, as fractions of its height/width, 'flip1', 'flip2': bool}.
    ``sim_relative_crop`` turns a batch of these into the model's ``rel_pos_21``.
    """

    def __init__(self, img_size: int = 224, crop_min: float = 0.08):
        self.crop = T.RandomResizedCrop(img_size, scale=(crop_min, 1.0), interpolation=T.InterpolationMode.BICUBIC)
        jitter = T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8)
        self.color1 = T.Compose([jitter, T.RandomGrayscale(0.2), T.RandomApply([GaussianBlur()], p=1.0)])
        self.color2 = T.Compose([
            jitter, T.RandomGrayscale(0.2), T.RandomApply([GaussianBlur()], p=0.1),
            T.RandomApply([Solarize()], p=0.2),
        ])
        self.to_tensor = normalize_to_tensor()

    def view(self, img: Image.Image) -> tuple[Image.Image, torch.Tensor, bool]:
        """Flip, then crop (the official order) -> (crop, box in the unflipped image, flipped)."""
        flip = bool(torch.rand(1) < 0.5)
        if flip:
            img = TF.hflip(img)
        i, j, h, w = self.crop.get_params(img, self.crop.scale, self.crop.ratio)
        crop = TF.resized_crop(img, i, j, h, w, self.crop.size, self.crop.interpolation)
        width, height = img.size
        if flip:  # the same pixels' columns in the unflipped image
            j = width - j - w
        return crop, torch.tensor([i / height, j / width, h / height, w / width]), flip

    def __call__(self, img: Image.Image) -> dict:
        v1, box1, flip1 = self.view(img)
        v2, box2, flip2 = self.view(img)
        return {
            "x1": self.to_tensor(self.color1(v1)), "x2": self.to_tensor(self.color2(v2)),
            "box1": box1, "box2": box2, "flip1": flip1, "flip2": flip2,
        }


def sim_relative_crop(box1: torch.Tensor, box2: torch.Tensor, flip1: torch.Tensor, flip2: torch.Tensor) -> RelativeCrop:
    """Boxes [N, 4] (top, left, height, width as fractions of the unflipped image) and flips [N] ->
    the official ``rel_pos_21`` (crop parameters are taken in the flipped image, width 1)."""
    def flipped(box, flip):  # left edge in the flipped image: 1 - left - width
        left = torch.where(flip.bool(), 1 - box[:, 1] - box[:, 3], box[:, 1])
        return torch.stack([box[:, 0], left, box[:, 2], box[:, 3]], dim=1)

    return relative_crop(flipped(box1, flip1), flipped(box2, flip2), flip1, flip2, torch.ones(box1.shape[0]))


# ------------------------------------------------------------------------------------------ dataset
class PretrainDataset(torch.utils.data.Dataset):
    """Images from ``list_images(source)`` through ``transform``; indexed by ``(epoch, index)`` pairs
    (an int means epoch 0).

    mode 'mae': adds 'noise' [L] (the MAE mask noise of the model's L = grid tokens);
    mode 'sim': adds 'mask' [gh, gw] (block-wise, ``num_masking_patches`` ones).
    Every sample has 'skipped': how many unreadable files were replaced to produce it.
    """

    def __init__(
        self, source: str | os.PathLike, transform, seed: int = 0, mode: str = "mae",
        grid: tuple[int, int] = (14, 14), num_masking_patches: int = 118, min_mask_patches: int = 16,
    ):
        if mode not in ("mae", "sim"):
            raise ValueError(f"mode must be 'mae' or 'sim', got {mode!r}")
        self.files = list_images(source)
        self.transform, self.seed, self.mode = transform, seed, mode
        self.grid, self.num_masking_patches, self.min_mask_patches = tuple(grid), num_masking_patches, min_mask_patches

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> tuple[Image.Image, int]:
        """The image at ``index`` or, if unreadable, the next readable one -> (image, files skipped)."""
        for skipped in range(min(MAX_REPLACEMENTS, len(self.files))):
            path = self.files[(index + skipped) % len(self.files)]
            try:
                with Image.open(path) as img:
                    return img.convert("RGB"), skipped
            except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped, never fatal
                warnings.warn(f"skipping unreadable image {path} ({type(exc).__name__}: {exc})", stacklevel=2)
        raise RuntimeError(
            f"{MAX_REPLACEMENTS} consecutive images from index {index} could not be read "
            f"(first: {self.files[index]}); is the dataset corrupt?"
        )

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        img, skipped = self.load(index)
        seed = sample_seed(self.seed, epoch, index)
        with seeded_rngs(seed):
            sample = self.transform(img)
            if self.mode == "mae":
                sample["noise"] = torch.rand(self.grid[0] * self.grid[1])
            else:
                sample["mask"] = block_wise_mask(
                    self.grid, self.num_masking_patches, self.min_mask_patches, rng=random.Random(seed)
                )
        sample["skipped"] = skipped
        return sample


# ------------------------------------------------------------------------------------------ sampler
class ResumableBatchSampler(torch.utils.data.Sampler):
    """Micro-batches of ``(epoch, index)`` for one rank; the same global order for any world size.

    Epoch ``e`` permutes all samples with a generator seeded by (seed, e); micro-batch ``b`` of rank
    ``r`` is ``perm[(b * world + r) * B : (b * world + r + 1) * B]`` (the remainder is dropped), so a
    1-process run with gradient accumulation over ``world`` micro-batches sees exactly the samples
    of a ``world``-process step. ``set_epoch(e, start)`` starts epoch ``e`` at micro-batch ``start``.
    """

    def __init__(self, num_samples: int, batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 0):
        self.num_samples, self.batch_size, self.world_size, self.rank, self.seed = (
            num_samples, batch_size, world_size, rank, seed,
        )
        self.num_batches = num_samples // (batch_size * world_size)
        if self.num_batches == 0:
            raise ValueError(
                f"{num_samples} images are fewer than one global micro-batch ({batch_size} per rank x "
                f"{world_size} ranks); add images or lower batch_size"
            )
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.num_batches - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]))
        perm = torch.randperm(self.num_samples, generator=g).tolist()
        for b in range(self.start, self.num_batches):
            lo = (b * self.world_size + self.rank) * self.batch_size
            yield [(self.epoch, i) for i in perm[lo : lo + self.batch_size]]


def build_dataset(cfg: dict, method: str, grid: tuple[int, int]) -> PretrainDataset:
    """The dataset a config asks for: MAE-style single view (mae, convmae) or SIM's two views."""
    if method == "sim":
        transform = SIMTransform(cfg["img_size"], cfg["crop_min"])
        return PretrainDataset(
            cfg["data"], transform, cfg["seed"], "sim", grid, cfg["num_mask_patches"], cfg["min_mask_patches"]
        )
    transform = MAETransform(cfg["img_size"], cfg["crop_scale"], cfg["hflip"])
    return PretrainDataset(cfg["data"], transform, cfg["seed"], "mae", grid)


def num_grid_tokens(img_size: int, patch_size: int) -> tuple[int, int]:
    if img_size % patch_size:
        raise ValueError(f"img_size {img_size} is not divisible by the patch size {patch_size}")
    return img_size // patch_size, img_size // patch_size


__all__ = [
    "list_images", "MAETransform", "SIMTransform", "PretrainDataset", "ResumableBatchSampler",
    "sim_relative_crop", "build_dataset", "IMAGENET_MEAN", "IMAGENET_STD",
]
