"""The colour operations of SIM's views on image tensors, with Pillow's 8-bit arithmetic.

The official pipeline runs torchvision's ``ColorJitter`` / ``RandomGrayscale`` on PIL images (Pillow's
``ImageEnhance`` blends, ``convert("L")``, the 8-bit HSV round trip of ``adjust_hue``),
``ImageFilter.GaussianBlur`` and ``ImageOps.solarize``. These functions compute the same 8-bit results
on an image held as float32 [3, H, W] with whole values 0..255: each operation ends on whole numbers,
rounded as Pillow rounds (truncation after a blend, round-half-up in the blur), so a chain of them
equals the chain of Pillow operations pixel for pixel (tests/test_sim_color.py). Each may work in
place: use the returned tensor. Float32 planes in channel-first memory: on channels-last memory the
operations run several times slower.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

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


def solarize_(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.solarize`` (threshold 128): levels 128..255 become 255 - x. On whole numbers that is
    127.5 - |x - 127.5| (levels below 128 map to themselves)."""
    return x.sub_(127.5).abs_().neg_().add_(127.5)


def adjust_hue_(x: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's PIL ``adjust_hue``: RGB -> Pillow's 8-bit HSV, H += int(factor * 255) (mod 256),
    -> RGB; the round trip quantises S and H even for a zero shift. Table look-ups (``_hsv_tables``)
    give Pillow's 8-bit H and S, and its rounded P; Q and T are computed from a table of their factor."""
    t = _hsv_tables()
    r, g, b = x.unbind(0)
    val = torch.maximum(torch.maximum(r, g), b)
    span = val - torch.minimum(torch.minimum(r, g), b)
    ar, ag, ab = (val - x).unbind(0)  # distances below the maximum; the maximum's own is 0
    not_r, not_g = ar.clamp(max=1), ag.clamp(max=1)  # 1 where that channel is below the maximum
    case = not_r * (1 + not_g)  # 0: R is the maximum, 1: G (R is not), 2: B (Pillow's order)
    key = (ar + ag).mul_(512).add_(ab).add_(ag).add_(case, alpha=512 * 512).int().view(-1)
    hue = t.hue.index_select(0, key) + (int(factor * 255) & 255)  # uint8: the shift wraps as Pillow's
    sat = t.sat.index_select(0, span.mul_(256).add_(val).int().view(-1)).int().mul_(256)
    vi = val.int().view(-1)
    u = t.unit.index_select(0, sat + hue).mul_(vi).add_(0.5).floor_()  # C round() of a positive double
    p = t.p.index_select(0, sat.add_(vi))
    vup = torch.stack([vi, u.int(), p.int()]).view(-1)  # [3 * H*W]: V, then Q or T, then P of every pixel
    rows = hue.int() + _CHANNEL_ROWS  # [3, H*W]: row c of the [3, 256] table, column H
    pick = t.order.view(-1).index_select(0, rows.view(-1)).view(3, -1)  # 0, 1, 2: V, Q or T, P
    pick = pick.mul_(vi.numel()).add_(_pixel_index(vi.numel()))  # its place in ``vup``
    return vup.index_select(0, pick.view(-1)).view(x.shape).float()


_CHANNEL_ROWS = torch.tensor([[0], [256], [512]], dtype=torch.int32)


@functools.lru_cache(maxsize=4)
def _pixel_index(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.int32)


class _HSVTables(NamedTuple):
    hue: torch.Tensor  # uint8 [3 * 512 * 512]: H of (maximum channel, two sums of distances below it)
    sat: torch.Tensor  # uint8 [256 * 256]: S of (maximum - minimum, maximum)
    unit: torch.Tensor  # float64 [256 * 256]: of (S, H): 1 - fs * f (odd sextants, Q) or 1 - fs * (1 - f) (T)
    p: torch.Tensor  # uint8 [256 * 256]: P of (S, V)
    order: torch.Tensor  # int32 [3, 256]: which of (V, Q/T, P) each of R, G, B takes in the sextant of H


def _table_hue() -> torch.Tensor:
    """``rgb2hsv_row``'s H for each (case, P, Q) of ``adjust_hue_``'s key: P = ar + ag, Q = ab + ag
    (distances below the maximum; the maximum's is 0), i.e. (ag, ab), (ar, ab) or (ar, ag) when R, G or
    B is the maximum."""
    big_p, big_q = (v.reshape(-1) for v in torch.meshgrid(torch.arange(512.0), torch.arange(512.0), indexing="ij"))
    hues = []
    for case in range(3):
        first, second = [(big_p, big_q - big_p), (big_p, big_q), (big_p - big_q, big_q)][case]
        first, second = first.clamp(0, 255), second.clamp(0, 255)  # combinations no pixel has: any value
        span = torch.maximum(first, second).clamp(min=1)
        c1, c2 = first / span, second / span  # float32 quotients (maxc - c) / cr, in r, g, b order
        if case == 0:  # h = bc - gc
            h = c2 - c1
        elif case == 1:  # h = 2.0 + rc - bc (double)
            h = (2.0 + c1.double() - c2.double()).float()
        else:  # h = 4.0 + gc - rc
            h = (4.0 + c2.double() - c1.double()).float()
        h = torch.fmod(h.double() / 6.0 + 1.0, 1.0).float().double().mul_(255).trunc_().clamp_(0, 255)
        hues.append(h.masked_fill_(torch.maximum(first, second) == 0, 0))
    return torch.cat(hues).to(torch.uint8)


@functools.lru_cache(maxsize=1)
def _hsv_tables() -> _HSVTables:
    """Pillow's libImaging/Convert.c ``rgb2hsv_row`` and ``hsv2rgb`` evaluated for every 8-bit input, in
    float32 where Pillow uses float and float64 where its expressions promote to double."""
    a1, a2 = (v.reshape(-1) for v in torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij"))
    cr, maxc = a1, a2  # S: (int)(cr / (float)maxc * 255.0)
    sat = (cr / maxc.clamp(min=1)).double().mul_(255).trunc_().masked_fill_(cr > maxc, 0).to(torch.uint8)
    s, h = a1.double(), a2.double()
    h6 = h * 6.0 / 255.0
    sextant = h6.floor()
    frac, fs = (h6 - sextant).float(), (s / 255.0).float()
    unit_q = 1.0 - (fs * frac).double()
    unit_t = 1.0 - fs.double() * (1.0 - frac.double())
    unit = torch.where(sextant.remainder(2) == 1, unit_q, unit_t)
    v = a2.double()  # P: round(v * (1.0 - fs)), indexed by (S, V)
    p = (v * (1.0 - fs.double())).add_(0.5).floor_().to(torch.uint8)
    # R, G, B per sextant 0..5 (6 = 0): (V,T,P) (Q,V,P) (P,V,T) (P,Q,V) (T,P,V) (V,P,Q)
    by_sextant = torch.tensor([[0, 1, 2, 2, 1, 0], [1, 0, 0, 1, 2, 2], [2, 2, 1, 0, 0, 1]])
    order = by_sextant[:, (torch.arange(256) * 6.0 / 255.0).floor().long().remainder(6)].int()
    return _HSVTables(_table_hue(), sat, unit, p, order)


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
    """One box blur along ``dim`` of int32 levels, edge pixels repeated (Pillow's line blur):
    out[k] = (inner * sum(x[k-r..k+r]) + outer * (x[k-r-1] + x[k+r+1]) + 2^23) >> 24, exact in int32 by
    splitting the 24-bit weights into 12-bit halves (the sums need up to 35 bits; float32 is not
    exact: the weights approximate fractions like 2/3 and 1/6 within 2^-24, so many sums lie just
    below a half)."""
    n = x.shape[dim]
    pad = [r + 1 if d == dim % x.ndim else -1 for d in range(x.ndim)]
    padded = torch.cat([x.narrow(dim, 0, 1).expand(*pad), x, x.narrow(dim, n - 1, 1).expand(*pad)], dim)
    window = padded.narrow(dim, 1, n)  # x[k-r..k+r] is padded[k+1..k+2r+1]
    for k in range(2, 2 * r + 2):
        window = window + padded.narrow(dim, k, n)
    far = padded.narrow(dim, 0, n) + padded.narrow(dim, 2 * r + 2, n)
    high = (window * (inner >> 12)).add_(far, alpha=outer >> 12)
    low = (window * (inner & 4095)).add_(far, alpha=outer & 4095).add_(_ONE // 2).bitwise_right_shift_(12)
    return high.add_(low).bitwise_right_shift_(12)


def gaussian_blur_(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``ImageFilter.GaussianBlur(radius=sigma)``: three box passes along the rows, then three along the
    columns, each rounded to whole levels as Pillow's 8-bit passes are."""
    r, inner, outer = box_blur_weights(sigma)
    x = x.int()
    for dim in (2, 2, 2, 1, 1, 1):
        x = _box_pass(x, dim, r, inner, outer)
    return x.float()
