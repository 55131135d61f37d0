"""Pretraining data: an image folder tree or a list file, the MAE/ConvMAE and SIM augmentations, and a
resumable distributed batch sampler.

Determinism (what makes mid-epoch resume bit-identical and DDP equal to gradient accumulation):
- ``ResumableBatchSampler`` draws one permutation per epoch from (seed, epoch) and hands micro-batch
  ``b`` of rank ``r`` the slice ``perm[(b * world + r) * B : ... + B]``; it can start at any batch.
- it yields ``(epoch, index)`` pairs, and ``PretrainDataset`` seeds every sample's augmentation (and
  its mask noise) from (seed, epoch, index), with the global RNGs saved and restored around it. A
  sample therefore does not depend on the worker, the rank or what came before it.
- an unreadable image is replaced by the next readable one (a deterministic choice); the sample
  carries ``unreadable``: its own file's index when that file could not be read, else -1. Every index
  is drawn once per epoch, so the training loop collects the distinct unreadable files (a file passed
  over by several samples, or in several epochs, counts once).

Speed (tools/benchmark.py ``data``): images are decoded with torchvision.io (libjpeg-turbo, the same
pixels as PIL) into uint8 tensors, and the crop is resized by torch's antialiased bicubic uint8 kernel
(PIL's filter, a = -0.5) instead of PIL's; the crop parameters are drawn by torchvision's own
``RandomResizedCrop.get_params`` with the same random calls in the same order, so under one seed the
crops and flips equal the official pipeline's. ``reference_transform`` is the official composition,
kept for that comparison.
"""
from __future__ import annotations

import os
import random
import warnings
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter, ImageOps

try:  # torchvision >= 0.29 marks its image codecs deprecated; without them, PIL decodes everything
    from torchvision.io import ImageReadMode, decode_image, read_file
except ImportError:  # pragma: no cover - depends on the installed torchvision
    decode_image = None

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
        torch.default_generator.manual_seed(seed)  # the CPU generator only: torch.manual_seed also queues
        # seeding every accelerator backend, which costs more than decoding a small image
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)


# ------------------------------------------------------------------------------------------ decoding
def read_rgb(path: str) -> torch.Tensor:
    """An image file -> uint8 [3, H, W] RGB, the pixels of PIL's ``convert("RGB")`` (what ImageFolder
    loads). torchvision.io decodes 8-bit JPEG/PNG/WebP/GIF (first frame), faster; everything else
    (BMP, TIFF, 16-bit PNG, ...) goes through PIL. Raises if the file cannot be read."""
    if decode_image is not None:
        try:
            img = decode_image(read_file(path), mode=ImageReadMode.RGB)
            if img.dtype == torch.uint8:  # a 16-bit PNG comes back as uint16: PIL converts it below
                return img[0] if img.ndim == 4 else img  # an animated GIF: its first frame, as PIL reads it
        except (RuntimeError, ValueError):  # a format torchvision does not decode, or a broken file
            pass
    with Image.open(path) as pil:
        return TF.pil_to_tensor(pil.convert("RGB"))


def as_uint8_tensor(img: Image.Image | torch.Tensor) -> torch.Tensor:
    """A PIL image or a uint8 [3, H, W] tensor -> uint8 [3, H, W]."""
    return img if isinstance(img, torch.Tensor) else TF.pil_to_tensor(img.convert("RGB"))


# ------------------------------------------------------------------------------------------ transforms
class ResizedCrop:
    """torchvision's ``RandomResizedCrop`` on uint8 tensors.

    ``params(h, w)`` draws (top, left, height, width) with torchvision's own ``get_params`` (the same
    random calls as on a PIL image of that size); ``__call__`` crops and resizes with torch's
    antialiased bicubic kernel on uint8 (PIL's filter, a = -0.5; on photographs a mean difference from
    PIL's result below 0.25 grey levels, see tests/test_pretrain_data.py), about 5x faster than PIL's.
    """

    def __init__(self, size: int, scale: Sequence[float], ratio: Sequence[float] = (3 / 4, 4 / 3)):
        self.size, self.scale, self.ratio = int(size), [float(s) for s in scale], [float(r) for r in ratio]

    def params(self, height: int, width: int) -> tuple[int, int, int, int]:
        shape_only = torch.empty(1, 1, 1).expand(1, height, width)  # get_params reads the size only
        return T.RandomResizedCrop.get_params(shape_only, self.scale, self.ratio)

    def __call__(self, img: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
        """uint8 [3, H, W] -> uint8 [3, size, size]."""
        crop = img[None, :, top : top + height, left : left + width]  # [1, 3, h, w]
        out = F.interpolate(crop, size=(self.size, self.size), mode="bicubic", antialias=True, align_corners=False)
        return out[0]


_MEAN_255 = torch.tensor(IMAGENET_MEAN).view(3, 1, 1) * 255
_INV_STD_255 = 1 / (torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255)


def normalize(img: torch.Tensor) -> torch.Tensor:
    """uint8 [3, H, W] -> float32 [3, H, W], (x / 255 - mean) / std (ToTensor + Normalize)."""
    return (img.float() - _MEAN_255) * _INV_STD_255


def normalize_to_tensor() -> T.Compose:
    return T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class MAETransform:
    """MAE/ConvMAE: RandomResizedCrop(size, scale, bicubic) + horizontal flip + ImageNet normalisation
    (facebookresearch/mae main_pretrain.py), on uint8 tensors (a PIL image is converted). The random
    draws are the official ones in the official order: crop parameters, then the flip.
    Returns {'image': [3, size, size]}."""

    def __init__(self, img_size: int = 224, scale: Sequence[float] = (0.2, 1.0), hflip: float = 0.5):
        self.crop, self.hflip = ResizedCrop(img_size, scale), hflip

    def __call__(self, img: Image.Image | torch.Tensor) -> dict:
        img = as_uint8_tensor(img)
        out = self.crop(img, *self.crop.params(img.shape[1], img.shape[2]))
        if torch.rand(1) < self.hflip:
            out = out.flip(-1)
        return {"image": normalize(out)}


def reference_transform(img_size: int = 224, scale: Sequence[float] = (0.2, 1.0), hflip: float = 0.5) -> T.Compose:
    """The official MAE composition on PIL images (torchvision only); tools/benchmark.py and the tests
    compare ``MAETransform`` with it."""
    return T.Compose([
        T.RandomResizedCrop(img_size, scale=tuple(scale), interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(hflip),
        normalize_to_tensor(),
    ])


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

    Geometry runs on uint8 tensors (``ResizedCrop``; cropping the unflipped image and flipping the
    result equals the official flip-then-crop), the colour operations on the small PIL crop exactly as
    the official ones. ``reference=True`` does the geometry on PIL as the official code (for
    comparisons). Returns {'x1', 'x2': [3, size, size], 'box1', 'box2': [4] = (top, left, height,
    width) of each crop in the original (unflipped) image, as fractions of its height/width, 'flip1',
    'flip2': bool}. ``sim_relative_crop`` turns a batch of these into the model's ``rel_pos_21``.
    """

    def __init__(self, img_size: int = 224, crop_min: float = 0.08, reference: bool = False):
        self.crop = ResizedCrop(img_size, (crop_min, 1.0))
        self.reference = reference
        jitter = T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8)
        self.color1 = T.Compose([jitter, T.RandomGrayscale(0.2), T.RandomApply([GaussianBlur()], p=1.0)])
        self.color2 = T.Compose([
            jitter, T.RandomGrayscale(0.2), T.RandomApply([GaussianBlur()], p=0.1),
            T.RandomApply([Solarize()], p=0.2),
        ])
        self.to_tensor = normalize_to_tensor()

    def view(self, img: torch.Tensor | Image.Image) -> tuple[Image.Image, torch.Tensor, bool]:
        """Flip, then crop (the official order of draws) -> (crop, box in the unflipped image, flipped)."""
        flip = bool(torch.rand(1) < 0.5)
        height, width = (img.height, img.width) if isinstance(img, Image.Image) else img.shape[1:]
        i, j, h, w = self.crop.params(height, width)  # in the flipped image
        left = width - j - w if flip else j  # the same pixels' columns in the unflipped image
        if isinstance(img, Image.Image):  # the official way: PIL flip, crop, resize
            pil = TF.hflip(img) if flip else img
            crop = TF.resized_crop(pil, i, j, h, w, [self.crop.size] * 2, T.InterpolationMode.BICUBIC)
        else:
            out = self.crop(img, i, left, h, w)
            crop = TF.to_pil_image(out.flip(-1) if flip else out)
        return crop, torch.tensor([i / height, left / width, h / height, w / width]), flip

    def __call__(self, img: Image.Image | torch.Tensor) -> dict:
        img = img.convert("RGB") if self.reference else as_uint8_tensor(img)
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
    Every sample has 'unreadable': its own index when its file could not be read (the next readable
    file stands in), else -1.
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

    def load(self, index: int) -> tuple[torch.Tensor, bool]:
        """The image at ``index`` (uint8 [3, H, W]) or, if unreadable, the next readable one ->
        (image, whether the file at ``index`` itself was unreadable)."""
        tries = min(MAX_REPLACEMENTS, len(self.files))
        for offset in range(tries):
            path = self.files[(index + offset) % len(self.files)]
            try:
                return read_rgb(path), offset > 0
            except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped, never fatal
                warnings.warn(f"skipping unreadable image {path} ({type(exc).__name__}: {exc})", stacklevel=2)
        if tries == len(self.files):
            raise RuntimeError(
                f"none of the {tries} images could be read (first: {self.files[0]}); check that the data "
                "folder holds image files your Pillow/torchvision can decode"
            )
        raise RuntimeError(
            f"{tries} consecutive images (of {len(self.files)}) from index {index} could not be read "
            f"(first: {self.files[index]}); is the dataset corrupt?"
        )

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        img, unreadable = self.load(index)
        seed = sample_seed(self.seed, epoch, index)
        with seeded_rngs(seed):
            sample = self.transform(img)
            if self.mode == "mae":
                sample["noise"] = torch.rand(self.grid[0] * self.grid[1])
            else:
                sample["mask"] = block_wise_mask(
                    self.grid, self.num_masking_patches, self.min_mask_patches, rng=random.Random(seed)
                )
        sample["unreadable"] = index if unreadable else -1
        return sample


def unreadable_indices(batch: dict) -> set[int]:
    """The indices of the unreadable files a collated batch reports (its 'unreadable' entries >= 0)."""
    ids = torch.as_tensor(batch["unreadable"])
    return set(ids[ids >= 0].tolist())


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
    "list_images", "read_rgb", "MAETransform", "SIMTransform", "reference_transform", "PretrainDataset",
    "ResumableBatchSampler", "unreadable_indices",
    "sim_relative_crop", "build_dataset", "IMAGENET_MEAN", "IMAGENET_STD",
]
