"""SIM's two augmented views (OpenGVLab/Siamese-Image-Modeling main_pretrain.py ``DataAugmentationForSIM``,
util/augmentation.py).

Each view flips (p=0.5) and takes its own RandomResizedCrop(size, scale=(crop_min, 1), bicubic) of the
flipped image; colour: ColorJitter(0.4, 0.4, 0.2, 0.1) p=0.8, grayscale p=0.2, Gaussian blur with
sigma ~ U(0.1, 2) p=1.0 (view 1) / p=0.1 (view 2), solarize p=0.2 (view 2 only); ImageNet
normalisation (``pretrain.data.to_model_input``, on the device).

``SIMTransform`` does all of it on uint8 tensors: geometry with ``ResizedCrop``, colour with
``color.py``'s Pillow-exact operations, every random number from the sample's generator, drawn in the
official order (flip 1, flip 2, crop 1, crop 2, then each view's colour draws in torchvision's order;
the blur's sigma, which the official code takes from Python's ``random``, comes from the generator at
the same point). ``SIMTransform(reference=True)`` is the official composition on PIL images, kept
for comparisons (tools/benchmark.py, tests).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter, ImageOps

from pretrain.data import ResizedCrop, as_uint8_tensor, normalize_to_tensor

from . import color

JITTER = (0.4, 0.4, 0.2, 0.1)  # ColorJitter(brightness, contrast, saturation, hue), "not strengthened"


@dataclass(frozen=True)
class ColorParams:
    """The random choices of one view's colour operations. ``jitter_order``: ColorJitter's order of
    (0 brightness, 1 contrast, 2 saturation, 3 hue), empty when the jitter is skipped; ``factors``: the
    four jitter factors; ``blur_sigma``: None when not blurred."""

    jitter_order: tuple[int, ...] = ()
    factors: tuple[float, ...] = ()
    grayscale: bool = False
    blur_sigma: float | None = None
    solarize: bool = False


class SIMColor:
    """One view's colour pipeline on uint8 images [S, S, 3]: ``draw(generator)`` makes the random choices
    as the official composition does (RandomApply: applied unless p < u; ColorJitter.get_params:
    randperm(4), then the four factors), ``apply`` runs them with ``color.py``'s operations.
    ``solarize_p=None``: no solarize step at all (view 1), so no number is drawn for it."""

    def __init__(self, blur_p: float, solarize_p: float | None = None, jitter: Sequence[float] = JITTER,
                 jitter_p: float = 0.8, grayscale_p: float = 0.2, sigma: Sequence[float] = (0.1, 2.0)):
        b, c, s, h = jitter
        self.ranges = ((max(0.0, 1 - b), 1 + b), (max(0.0, 1 - c), 1 + c), (max(0.0, 1 - s), 1 + s), (-h, h))
        self.jitter_p, self.grayscale_p, self.blur_p, self.solarize_p = jitter_p, grayscale_p, blur_p, solarize_p
        self.sigma = tuple(sigma)

    def draw(self, generator: torch.Generator | None = None) -> ColorParams:
        def applied(p: float) -> bool:  # torchvision's RandomApply
            return not p < torch.rand(1, generator=generator).item()

        def uniform(lo: float, hi: float) -> float:
            return torch.empty(1).uniform_(lo, hi, generator=generator).item()

        order, factors = (), ()
        if applied(self.jitter_p):
            order = tuple(torch.randperm(4, generator=generator).tolist())
            factors = tuple(uniform(lo, hi) for lo, hi in self.ranges)
        grayscale = torch.rand(1, generator=generator).item() < self.grayscale_p
        sigma = uniform(*self.sigma) if applied(self.blur_p) else None
        solarize = self.solarize_p is not None and applied(self.solarize_p)
        return ColorParams(order, factors, grayscale, sigma, solarize)

    @staticmethod
    def apply(view: torch.Tensor, params: ColorParams) -> torch.Tensor:
        """uint8 [S, S, 3] -> uint8 [S, S, 3]."""
        if params == ColorParams():
            return view
        x = torch.empty(view.shape[2], view.shape[0], view.shape[1]).copy_(view.permute(2, 0, 1))  # [3, S, S]
        # (contiguous planes: the operations run several times slower on channels-last memory)
        ops = (color.adjust_brightness_, color.adjust_contrast_, color.adjust_saturation_, color.adjust_hue_)
        for k in params.jitter_order:
            x = ops[k](x, params.factors[k])
        if params.grayscale:
            x = color.grayscale(x)  # [1, S, S] from here on
        if params.blur_sigma is not None:
            x = color.gaussian_blur_(x, params.blur_sigma)
        if params.solarize:
            x = color.solarize_(x)
        return hwc_uint8(x)

    def __call__(self, view: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(view, self.draw(generator))


def hwc_uint8(x: torch.Tensor) -> torch.Tensor:
    """Whole levels [3, S, S] or one grey plane [1, S, S] (float32 or int32) -> uint8 [S, S, 3]: via int32
    (float -> uint8 is slower), interleaved by numpy (torch's uint8 channels-last copy is about twice as slow)."""
    planes = x.int().to(torch.uint8).numpy()
    return torch.from_numpy(np.dstack(planes if len(planes) == 3 else [planes[0]] * 3))


# ------------------------------------------------------------------------------------------ official
class GaussianBlur:
    """SimCLR's blur with sigma ~ U(0.1, 2.0) from Python's ``random`` (util/augmentation.py)."""

    def __init__(self, sigma: Sequence[float] = (0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, img: Image.Image) -> Image.Image:
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


class Solarize:
    """BYOL's solarize (util/augmentation.py)."""

    def __call__(self, img: Image.Image) -> Image.Image:
        return ImageOps.solarize(img)


def official_color(blur_p: float, solarize_p: float | None = None) -> T.Compose:
    """``DataAugmentationForSIM.color_transform1`` (blur_p=1.0) / ``color_transform2`` (0.1, 0.2) on PIL."""
    steps = [T.RandomApply([T.ColorJitter(*JITTER)], p=0.8), T.RandomGrayscale(p=0.2),
             T.RandomApply([GaussianBlur((0.1, 2.0))], p=blur_p)]
    if solarize_p is not None:
        steps.append(T.RandomApply([Solarize()], p=solarize_p))
    return T.Compose(steps)


# ------------------------------------------------------------------------------------------ the views
class SIMTransform:
    """SIM's two views of an image (see the module docstring). Returns {'x1', 'x2': uint8 [size, size, 3]
    (normalised float [3, size, size] with ``reference``), 'box1', 'box2': [4] = (top, left, height,
    width) of each crop in the original (unflipped) image, as fractions of its height/width, 'flip1',
    'flip2': bool}. ``pretrain.models.sim.geometry.sim_relative_crop`` turns a batch of these into the
    model's ``rel_pos_21``."""

    def __init__(self, img_size: int = 224, crop_min: float = 0.08, reference: bool = False):
        self.crop = ResizedCrop(img_size, (crop_min, 1.0))
        self.reference = reference
        if reference:
            self.color1, self.color2 = official_color(1.0), official_color(0.1, 0.2)
            self.to_tensor = normalize_to_tensor()
        else:
            self.color1, self.color2 = SIMColor(1.0), SIMColor(0.1, 0.2)

    def view(self, img: torch.Tensor, flip: bool, box: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop ``box`` (i, j, h, w) of the image flipped by ``flip`` -> (uint8 [S, S, 3], box in the
        unflipped image as fractions). Cropping the unflipped image and flipping the result equals the
        official flip-then-crop."""
        height, width = img.shape[1:]
        i, j, h, w = box
        left = width - j - w if flip else j  # the same pixels' columns in the unflipped image
        out = self.crop(img, i, left, h, w)
        return (out.flip(1) if flip else out), torch.tensor([i / height, left / width, h / height, w / width])

    def __call__(self, img: Image.Image | torch.Tensor, generator: torch.Generator | None = None) -> dict:
        if self.reference:
            return self.official(img)
        img = as_uint8_tensor(img)
        flips = [torch.rand(1, generator=generator).item() < 0.5 for _ in range(2)]
        boxes = [self.crop.params(img.shape[1], img.shape[2], generator) for _ in range(2)]
        (v1, box1), (v2, box2) = (self.view(img, f, b) for f, b in zip(flips, boxes))
        x1 = self.color1(v1, generator)
        x2 = self.color2(v2, generator)
        return {"x1": x1, "x2": x2, "box1": box1, "box2": box2, "flip1": flips[0], "flip2": flips[1]}

    def official(self, img: Image.Image) -> dict:
        """The official pipeline: PIL flips, torchvision's crop draws, PIL crops, colour and normalisation,
        global RNGs throughout."""
        img = img.convert("RGB")
        flips = [bool(torch.rand(1) < 0.5) for _ in range(2)]
        flipped = [TF.hflip(img) if f else img for f in flips]
        boxes = [T.RandomResizedCrop.get_params(im, self.crop.scale, self.crop.ratio) for im in flipped]
        size, bicubic = [self.crop.size] * 2, T.InterpolationMode.BICUBIC
        views = [TF.resized_crop(im, *b, size, bicubic) for im, b in zip(flipped, boxes)]
        x1, x2 = self.to_tensor(self.color1(views[0])), self.to_tensor(self.color2(views[1]))
        box1, box2 = (torch.tensor([i / img.height, (img.width - j - w if f else j) / img.width, h / img.height,
                                    w / img.width]) for (i, j, h, w), f in zip(boxes, flips))
        return {"x1": x1, "x2": x2, "box1": box1, "box2": box2, "flip1": flips[0], "flip2": flips[1]}
