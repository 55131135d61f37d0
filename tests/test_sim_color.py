"""SIM's colour operations on tensors (pretrain/models/sim/color.py, views.py) against the official PIL
pipeline: each operation pixel-exact for given parameters (tolerance: 0 grey levels), the random draws in
torchvision's order, the whole colour pipeline pixel-exact for the same draws, and the whole two-view
pipeline's pixel statistics equal to the official one's (two-sample KS)."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter, ImageOps
from test_pretrain_data import _ks, _photo_like_jpeg

from pretrain.models.sim import color
from pretrain.models.sim import views as sim_views
from pretrain.models.sim.views import JITTER, SIMColor, SIMTransform, official_color


def _planes(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float32 [3, H, W] of whole levels (what color.py works on)."""
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).float().contiguous()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Image.Image]:
    """A photograph-like JPEG crop and uniform random colours (every hue/saturation case, ties included)."""
    photo = Image.open(_photo_like_jpeg(tmp_path_factory.mktemp("c") / "p.jpg", 96, 72, seed=4)).convert("RGB")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    noise[:8, :, 1] = noise[:8, :, 0]  # equal maxima (R = G), Pillow's tie order
    noise[8:16, :, :] = noise[8:16, :, :1]  # grey pixels
    return [photo, Image.fromarray(noise)]


OPS = [  # (ours, the official PIL operation, parameters)
    (color.adjust_brightness_, TF.adjust_brightness, (0.6, 0.93, 1.0, 1.4)),
    (color.adjust_contrast_, TF.adjust_contrast, (0.6, 1.17, 1.4)),
    (color.adjust_saturation_, TF.adjust_saturation, (0.8, 1.0, 1.2)),
    (color.adjust_hue_, TF.adjust_hue, (-0.1, -0.031, 0.0, 0.004, 0.1)),
    (color.gaussian_blur_, lambda im, s: im.filter(ImageFilter.GaussianBlur(s)), (0.1, 0.77, 1.0, 1.5, 2.0)),
]


@pytest.mark.parametrize("ours, official, params", OPS, ids=["brightness", "contrast", "saturation", "hue", "blur"])
def test_each_operation_equals_pil_for_the_same_parameter(images, ours, official, params):
    for img in images:
        for p in params:
            out = ours(_planes(img), p)
            assert torch.equal(out, _planes(official(img, p))), p


def test_grayscale_and_solarize_equal_pil(images):
    for img in images:
        assert torch.equal(color.grayscale(_planes(img)).expand(3, -1, -1), _planes(TF.rgb_to_grayscale(img, 3)))
        assert torch.equal(color.solarize_(_planes(img)), _planes(ImageOps.solarize(img)))


def test_hue_coefficients_round_alike_in_float32_for_every_value():
    """adjust_hue_ rounds V * k with float32 factors k; Pillow computes round(V * k) in double: equal for
    every (S, H) factor of every channel and every V in 0..255 (2^24 cases per channel)."""
    exact = color.hsv_coefficients()
    assert exact.dtype == torch.float64 and exact.shape == (3, 256 * 256)
    v = torch.arange(256.0)
    for c in range(3):
        ours = (color._hsv_tables().coef[c].view(-1, 1) * v).add_(0.5).floor_()
        assert torch.equal(ours.double(), (exact[c].view(-1, 1) * v.double()).add_(0.5).floor_()), c


def test_blur_edges_of_images_smaller_than_the_box():
    rng = np.random.default_rng(1)
    for h, w in [(1, 1), (2, 3), (5, 2)]:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for sigma in (0.5, 2.0):
            official = img.filter(ImageFilter.GaussianBlur(sigma))
            assert torch.equal(color.gaussian_blur_(_planes(img), sigma), _planes(official))


def test_draws_follow_torchvisions_order():
    """Under the same global seed SIMColor.draw consumes the numbers the official composition does:
    RandomApply's u, ColorJitter.get_params (randperm, then four factors), RandomGrayscale's u, the
    blur's RandomApply u, sigma (here from torch, where the official uses Python's random), solarize's u."""
    ranges = [[1 - JITTER[0], 1 + JITTER[0]], [1 - JITTER[1], 1 + JITTER[1]], [1 - JITTER[2], 1 + JITTER[2]],
              [-JITTER[3], JITTER[3]]]
    for seed in range(40):
        torch.manual_seed(seed)
        ours = SIMColor(0.1, 0.2).draw()
        torch.manual_seed(seed)
        jitter = not 0.8 < torch.rand(1)
        if jitter:
            order, *factors = T.ColorJitter.get_params(*ranges)
            assert ours.jitter_order == tuple(order.tolist()) and ours.factors == tuple(factors)
        else:
            assert ours.jitter_order == ()
        assert ours.grayscale == bool(torch.rand(1) < 0.2)
        blur = not 0.1 < torch.rand(1)
        assert (ours.blur_sigma is not None) == blur
        if blur:
            assert ours.blur_sigma == torch.empty(1).uniform_(0.1, 2.0).item()
        assert ours.solarize == (not 0.2 < torch.rand(1))


def test_colour_pipelines_equal_the_official_for_the_same_draws(images, monkeypatch):
    """Both views' colour pipelines on tensors vs DataAugmentationForSIM's color_transform1/2 on PIL, the
    global RNG seeded alike and the official blur's sigma drawn from torch at the same point: every
    pixel of every sample equal."""
    monkeypatch.setattr(sim_views.random, "uniform", lambda a, b: torch.empty(1).uniform_(a, b).item())
    img = images[0].resize((40, 32))
    view = torch.from_numpy(np.array(img))
    for ours, official in [(SIMColor(1.0), official_color(1.0)), (SIMColor(0.1, 0.2), official_color(0.1, 0.2))]:
        for seed in range(60):
            torch.manual_seed(seed)
            out = ours(view)
            torch.manual_seed(seed)
            assert out.dtype == torch.uint8 and torch.equal(out, torch.from_numpy(np.array(official(img)))), seed


def _colour_stats(x: torch.Tensor) -> list[tuple[float, float, float]]:
    """uint8 [N, S, S, 3] -> per image (mean level, spread of levels, colourfulness = mean |R - G| + |G - B|)."""
    x = x.float()
    colourful = (x[..., 0] - x[..., 1]).abs().mean((1, 2)) + (x[..., 1] - x[..., 2]).abs().mean((1, 2))
    return list(zip(x.mean((1, 2, 3)).tolist(), x.std((1, 2, 3)).tolist(), colourful.tolist()))


def _official_uint8(out: torch.Tensor) -> torch.Tensor:
    """The official normalised float [3, S, S] back to uint8 [S, S, 3]."""
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    return ((out * std.view(3, 1, 1) + mean.view(3, 1, 1)) * 255).round().clamp(0, 255).byte().permute(1, 2, 0)


def test_two_views_match_the_official_pixel_statistics(images):
    """Whole pipeline (geometry + colour, per-sample generators) vs the official one (global RNGs): KS of
    per-image mean, spread and colourfulness of each view below the 0.1% critical value; the same test
    tells a pipeline without grayscale apart (so it can fail)."""
    img = images[0]
    n, size = 300, 32
    ours = [SIMTransform(size, 0.08)(img, torch.Generator().manual_seed(s)) for s in range(n)]
    torch.manual_seed(0), random.seed(0)
    official = SIMTransform(size, 0.08, reference=True)
    ref = [official(img) for _ in range(n)]
    critical = 1.95 * math.sqrt(2 / n)
    for key in ("x1", "x2"):
        a = _colour_stats(torch.stack([o[key] for o in ours]))
        b = _colour_stats(torch.stack([_official_uint8(r[key]) for r in ref]))
        for k in range(3):
            assert _ks([s[k] for s in a], [s[k] for s in b]) < critical, (key, k)
    no_grey = SIMTransform(size, 0.08)
    no_grey.color2.grayscale_p = 0.0
    c = _colour_stats(torch.stack([no_grey(img, torch.Generator().manual_seed(s))["x2"] for s in range(n)]))
    b = _colour_stats(torch.stack([_official_uint8(r["x2"]) for r in ref]))
    assert _ks([s[2] for s in c], [s[2] for s in b]) > critical
