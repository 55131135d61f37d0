"""The colour operations of SIM's views on image tensors, with Pillow's 8-bit arithmetic.

The official pipeline runs torchvision's ``ColorJitter`` / ``RandomGrayscale`` on PIL images (Pillow's
``ImageEnhance`` blends, ``convert("L")``, the 8-bit HSV round trip of ``adjust_hue``),
``ImageFilter.GaussianBlur`` and ``ImageOps.solarize``. These functions compute the same 8-bit results
on an image held as float32 [3, H, W] with whole values 0..255: each operation ends on whole numbers,
rounded as Pillow rounds (truncation after a blend, round-half-up in the blur), so a chain of them
equals the chain of Pillow operations (tests/test_sim_color.py: exact, or within one grey level on a
few pixels where float rounding differs). Each may work in place: use the returned tensor.
"""
from __future__ import annotations

import math

import numpy as np
import torch

_ONE = 1 << 24  # Pillow's box blur weights are fixed-point numbers with 24 fractional bits


def luma(x: torch.Tensor) -> torch.Tensor:
    """Pillow's ``convert("L")``: (19595 R + 38470 G + 7471 B + 2^15) >> 16 -> [1, H, W] (x unchanged;
    every intermediate is a whole number below 2^24, exact in float32)."""
    r, g, b = x.unbind(0)
    return (r * 19595).add_(g, alpha=38470).add_(b, alpha=7471).add_(32768).mul_(1 / 65536).floor_().unsqueeze(0)


def _blend_(x: torch.Tensor, degenerate: torch.Tensor | float, factor: float) -> torch.Tensor:
    """``Image.blend(degenerate, x, factor)``: trunc(d + factor * (x - d)), clipped to 0..255 (float32
    arithmetic in Pillow's order)."""
    return x.sub_(degenerate).mul_(factor).add_(degenerate).clamp_(0, 255).floor_()


def adjust_brightness_(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``ImageEnhance.Brightness``: a blend with black."""
    return x.mul_(factor).clamp_(0, 255).floor_()


def adjust_contrast_(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``ImageEnhance.Contrast``: a blend with the mean of the grey image, rounded to a whole level."""
    mean = luma(x).sum(dtype=torch.float64).item() / (x.shape[1] * x.shape[2])
    return _blend_(x, float(int(mean + 0.5)), factor)


def adjust_saturation_(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``ImageEnhance.Color``: a blend with the grey image."""
    return _blend_(x, luma(x), factor)


def grayscale_(x: torch.Tensor) -> torch.Tensor:
    """``rgb_to_grayscale(img, 3)`` on PIL: the grey image in all three channels."""
    return x.copy_(luma(x).expand_as(x))


def solarize_(x: torch.Tensor, threshold: float = 128) -> torch.Tensor:
    """``ImageOps.solarize``: levels at or above ``threshold`` inverted."""
    return torch.where(x >= threshold, 255 - x, x)


def adjust_hue_(x: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's PIL ``adjust_hue``: RGB -> Pillow's 8-bit HSV, H += int(factor * 255) (mod 256),
    -> RGB; the round trip quantises S and H even for a zero shift."""
    hue, sat, val = _rgb_to_hsv8(x)
    hue = torch.remainder(hue + int(factor * 255), 256)
    return _hsv8_to_rgb(hue, sat, val)


def _rgb_to_hsv8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pillow's ``rgb2hsv_row`` (libImaging/Convert.c) -> whole-number H, S, V [H, W]: float32 where
    Pillow uses float, float64 where its expressions promote to double."""
    minc, maxc = torch.aminmax(x, dim=0)
    span = maxc - minc
    grey = span == 0
    span_or_1 = torch.where(grey, 1.0, span)
    sat = (span / torch.where(maxc == 0, 1.0, maxc)).double().mul_(255).trunc_()
    rc, gc, bc = ((maxc - x) / span_or_1).double().unbind(0)  # float32 quotients, as Pillow's
    r, g, _ = x.unbind(0)
    hue = torch.where(r == maxc, (bc - gc).float(), torch.where(g == maxc, 2.0 + rc - bc, 4.0 + gc - rc).float())
    hue = torch.fmod(hue.double() / 6.0 + 1.0, 1.0).float().double().mul_(255).trunc_().clamp_(0, 255)
    return hue.masked_fill_(grey, 0), sat.masked_fill_(grey, 0), maxc.double()


# (V, P, Q, T) -> (R, G, B) for each sextant i % 6 of the hue circle (Convert.c hsv2rgb)
_SEXTANTS = torch.tensor([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]])


def _hsv8_to_rgb(hue: torch.Tensor, sat: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
    """Pillow's ``hsv2rgb`` on whole-number float64 H, S, V [H, W] -> float32 [3, H, W]."""
    h6 = hue * 6.0 / 255.0
    sextant = h6.floor()
    frac = (h6 - sextant).float()
    fs = (sat / 255.0).float()
    p = val * (1.0 - fs.double())
    q = val * (1.0 - (fs * frac).double())  # float32 product, as Pillow's fs * f
    t = val * (1.0 - fs.double() * (1.0 - frac.double()))
    vpqt = torch.stack([val, p, q, t]).add_(0.5).floor_().clamp_(0, 255)  # C round() of positive values
    idx = _SEXTANTS[:, sextant.long().remainder_(6)]  # [3, H, W]
    rgb = vpqt.gather(0, idx)
    return torch.where(sat == 0, val, rgb).float()


def box_blur_weights(sigma: float, passes: int = 3) -> tuple[int, int, int]:
    """Pillow's Gaussian blur is ``passes`` box blurs of a fractional radius (Gwosdek et al. 2011;
    libImaging/BoxBlur.c ``_gaussian_blur_radius``, ``ImagingHorizontalBoxBlur``) -> (whole radius r,
    weight of each of the 2r+1 inner taps, weight of the two outer taps), weights in units of 2^-24.
    Computed in float32 where Pillow's C code uses float."""
    f32 = np.float32
    sigma2 = f32(sigma) * f32(sigma) / f32(passes)
    length = f32(math.sqrt(12.0 * float(sigma2) + 1.0))
    whole = f32(math.floor((float(length) - 1.0) / 2.0))
    frac = (f32(2) * whole + f32(1)) * (whole * (whole + f32(1)) - f32(3) * sigma2)
    frac = frac / (f32(6) * (sigma2 - (whole + f32(1)) * (whole + f32(1))))
    radius = whole + frac
    r = int(radius)
    inner = int(f32(_ONE) / (radius * f32(2) + f32(1)))
    return r, inner, (_ONE - (2 * r + 1) * inner) // 2


def _box_pass(x: torch.Tensor, dim: int, r: int, inner: int, outer: int) -> torch.Tensor:
    """One box blur along ``dim`` of float64 whole numbers, edge pixels repeated (Pillow's line blur):
    out[k] = (inner * sum(x[k-r..k+r]) + outer * (x[k-r-1] + x[k+r+1]) + 2^23) >> 24, exact in float64
    (float32 is not: the weights approximate fractions like 2/3 and 1/6 to within 2^-24, so many sums
    lie just below a half)."""
    n = x.shape[dim]
    first, last = x.narrow(dim, 0, 1), x.narrow(dim, n - 1, 1)
    pad = [r + 1 if d == dim % x.ndim else -1 for d in range(x.ndim)]
    padded = torch.cat([first.expand(*pad), x, last.expand(*pad)], dim)  # [..., n + 2r + 2, ...]
    sums = padded.cumsum(dim)
    window = sums.narrow(dim, 2 * r + 1, n) - sums.narrow(dim, 0, n)  # x[k-r..k+r] (padded k+1..k+2r+1)
    far = padded.narrow(dim, 0, n) + padded.narrow(dim, 2 * r + 2, n)
    return window.mul_(inner).add_(far, alpha=outer).add_(_ONE // 2).mul_(1 / _ONE).floor_()


def gaussian_blur_(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``ImageFilter.GaussianBlur(radius=sigma)``: three box passes along the rows, then three along the
    columns, each rounded to whole levels as Pillow's 8-bit passes are."""
    r, inner, outer = box_blur_weights(sigma)
    x = x.double()
    for dim in (2, 2, 2, 1, 1, 1):
        x = _box_pass(x, dim, r, inner, outer)
    return x.float()
