"""Pretraining data: an image folder tree or a list file, the MAE/ConvMAE augmentation (SIM's two views
are in pretrain/models/sim/views.py), and a resumable distributed batch sampler.

Determinism (what makes mid-epoch resume bit-identical and DDP equal to gradient accumulation):
- ``ResumableBatchSampler`` draws one permutation per epoch from (seed, epoch) and hands micro-batch
  ``b`` of rank ``r`` the slice ``perm[(b * world + r) * B : ... + B]``; it can start at any batch.
- it yields ``(epoch, index)`` pairs, and ``PretrainDataset`` draws every random number of a sample
  (crop, flip, mask noise, SIM's colour choices) from a generator seeded by (seed, epoch, index). A
  sample therefore does not depend on the worker, the rank or what came before it.
- an unreadable image is replaced by the next readable one (a deterministic choice); the sample
  carries ``unreadable``: its own file's index when that file could not be read, else -1. Every index
  is drawn once per epoch, so the training loop collects the distinct unreadable files (a file passed
  over by several samples, or in several epochs, counts once).

Speed (tools/benchmark.py ``data``: images per CPU-second against the official ImageFolder pipeline):
images are decoded with torchvision.io (libjpeg-turbo, the same pixels as PIL) into uint8 tensors whose
memory is HWC; the crop is resized by torch's vectorised channels-last uint8 antialiased bicubic kernel
(PIL's filter, a = -0.5) and stays uint8 HWC through collation; ``to_model_input`` converts and
normalises a batch on the device the model runs on. The crop boxes follow torchvision's
``RandomResizedCrop`` distribution (``draw_crop``), drawn from a per-sample generator.
``reference_transform`` is the official composition, kept for comparisons.
"""
from __future__ import annotations

import math
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
from PIL import Image

try:  # torchvision >= 0.29 marks its image codecs deprecated; without them, PIL decodes everything
    from torchvision.io import ImageReadMode, decode_image, read_file
except ImportError:  # pragma: no cover - depends on the installed torchvision
    decode_image = None

from pretrain.models.sim.masking import block_wise_mask

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
    """Seed torch's, Python's and numpy's global RNGs (torchvision, PIL-based, detectron2/fvcore and
    mmcv transforms draw from them) for the block and put the callers' states back afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # the CPU generator only: torch.manual_seed also queues
        # seeding every accelerator backend, which costs more than decoding a small image
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


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
def draw_crop(height: int, width: int, scale: Sequence[float], ratio: Sequence[float],
              generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop with RandomResizedCrop's distribution (torchvision's
    ``get_params``): up to 10 tries of area ~ U(scale) * H * W and log aspect ~ U(log ratio), the first
    that fits the image, placed uniformly; else the largest centred crop within ``ratio``. The tries'
    numbers come from one ``torch.rand`` call on ``generator`` (torchvision draws them one by one
    from the global RNG, which a per-sample generator makes unnecessary to fork and restore)."""
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for a, b in torch.rand(10, 2, generator=generator).tolist():
        target = height * width * (scale[0] + (scale[1] - scale[0]) * a)
        aspect = math.exp(log_lo + (log_hi - log_lo) * b)
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            u, v = torch.rand(2, generator=generator).tolist()
            return min(int(u * (height - h + 1)), height - h), min(int(v * (width - w + 1)), width - w), h, w
    if width / height < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif width / height > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class ResizedCrop:
    """RandomResizedCrop on uint8 tensors: ``params(h, w, generator)`` draws a box (``draw_crop``);
    ``__call__`` crops a [3, H, W] image and resizes the crop with torch's antialiased bicubic kernel
    (PIL's filter, a = -0.5; on photographs a mean difference from PIL's result below 0.25 grey
    levels, see tests/test_pretrain_data.py) in channels-last layout, where torch has a vectorised
    uint8 kernel, returning [size, size, 3] (HWC). The decoders return HWC memory already
    (``read_rgb``'s [3, H, W] is a view of it), so no layout copy happens on the CPU at all."""

    def __init__(self, size: int, scale: Sequence[float], ratio: Sequence[float] = (3 / 4, 4 / 3)):
        self.size, self.scale, self.ratio = int(size), [float(s) for s in scale], [float(r) for r in ratio]

    def params(self, height: int, width: int, generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
        return draw_crop(height, width, self.scale, self.ratio, generator)

    def __call__(self, img: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
        """uint8 [3, H, W] -> uint8 [size, size, 3]."""
        crop = img[None, :, top : top + height, left : left + width].contiguous(memory_format=torch.channels_last)
        out = F.interpolate(crop, size=(self.size, self.size), mode="bicubic", antialias=True, align_corners=False)
        return out[0].permute(1, 2, 0).contiguous()  # already contiguous: the kernel writes channels-last


def to_model_input(images: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 images [N, H, W, 3] (what the pipeline yields) -> float32 [N, 3, H, W] on ``device``,
    (x / 255 - mean) / std: ToTensor + Normalize, done where the model runs, after a transfer of
    a quarter of the bytes float images would take."""
    x = images.to(device, non_blocking=True) if device is not None else images
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1) * 255
    inv_std = 1 / (torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1) * 255)
    return ((x.permute(0, 3, 1, 2).float() - mean) * inv_std).contiguous()


def normalize_to_tensor() -> T.Compose:
    return T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class MAETransform:
    """MAE/ConvMAE: RandomResizedCrop(size, scale, bicubic) + horizontal flip (facebookresearch/mae
    main_pretrain.py) on uint8 tensors (a PIL image is converted), every draw from ``generator``.
    Returns {'image': uint8 [size, size, 3]}; ``to_model_input`` normalises a batch on the device."""

    def __init__(self, img_size: int = 224, scale: Sequence[float] = (0.2, 1.0), hflip: float = 0.5):
        self.crop, self.hflip = ResizedCrop(img_size, scale), hflip

    def __call__(self, img: Image.Image | torch.Tensor, generator: torch.Generator | None = None) -> dict:
        img = as_uint8_tensor(img)
        out = self.crop(img, *self.crop.params(img.shape[1], img.shape[2], generator))
        if torch.rand(1, generator=generator).item() < self.hflip:
            out = out.flip(1)
        return {"image": out}


def reference_transform(img_size: int = 224, scale: Sequence[float] = (0.2, 1.0), hflip: float = 0.5) -> T.Compose:
    """The official MAE composition on PIL images (torchvision only); tools/benchmark.py and the tests
    compare ``MAETransform`` with it."""
    return T.Compose([
        T.RandomResizedCrop(img_size, scale=tuple(scale), interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(hflip),
        normalize_to_tensor(),
    ])


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
        generator = torch.Generator().manual_seed(seed)  # every draw of this sample comes from it
        sample = self.transform(img, generator)
        if self.mode == "mae":
            sample["noise"] = torch.rand(self.grid[0] * self.grid[1], generator=generator)
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


def num_grid_tokens(img_size: int, patch_size: int) -> tuple[int, int]:
    if img_size % patch_size:
        raise ValueError(f"img_size {img_size} is not divisible by the patch size {patch_size}")
    return img_size // patch_size, img_size // patch_size


__all__ = [
    "list_images", "read_rgb", "MAETransform", "reference_transform", "PretrainDataset",
    "ResumableBatchSampler", "unreadable_indices", "to_model_input", "draw_crop", "IMAGENET_MEAN", "IMAGENET_STD",
]
