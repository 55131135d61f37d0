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


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """``rgb_to_grayscale(img, 3)`` on PIL: the grey image in all three channels, returned as the one plane
    [1, H, W] that stands for them (blur and solarize, which may follow, treat every channel alike)."""
    return luma(x)


def solarize_(x: torch.Tensor) -> torch.Tensor:
    """``ImageOps.solarize`` (threshold 128): levels 128..255 become 255 - x. On whole numbers that is
    127.5 - |x - 127.5| (levels below 128 map to themselves)."""
    return x.sub_(127.5).abs_().neg_().add_(127.5)


def adjust_hue_(x: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's PIL ``adjust_hue``: RGB -> Pillow's 8-bit HSV, H += int(factor * 255) (mod 256),
    -> RGB; the round trip quantises S and H even for a zero shift. Table look-ups (``_hsv_tables``)
    give Pillow's 8-bit H and S; each output channel is round(V * k) with k, by (S, shifted H), from
    ``_HSVTables.coef`` (1 for V, Pillow's factor of P, Q or T)."""
    t = _hsv_tables()
    r, g, b = x.unbind(0)
    val = torch.maximum(torch.maximum(r, g), b)
    span = val - torch.minimum(torch.minimum(r, g), b)
    ar, ag, ab = (val - x).unbind(0)  # distances below the maximum; the maximum's own is 0
    not_r, not_g = ar.clamp(max=1), ag.clamp(max=1)  # 1 where that channel is below the maximum
    case = not_r * (1 + not_g)  # 0: R is the maximum, 1: G (R is not), 2: B (Pillow's order)
    key = (ar + ag).mul_(512).add_(ab).add_(ag).add_(case, alpha=512 * 512).int().view(-1)
    hue = t.hue.index_select(0, key) + (int(factor * 255) & 255)  # uint8: the shift wraps as Pillow's
    cell = t.sat.index_select(0, span.mul_(256).add_(val).int().view(-1)).add_(hue)  # S * 256 + H
    out = torch.empty_like(x).view(3, -1)
    for c in range(3):
        torch.index_select(t.coef[c], 0, cell, out=out[c])
    return out.mul_(val.view(1, -1)).add_(0.5).floor_().view(x.shape)


class _HSVTables(NamedTuple):
    hue: torch.Tensor  # uint8 [3 * 512 * 512]: H of (maximum channel, two sums of distances below it)
    sat: torch.Tensor  # int32 [256 * 256]: S * 256 of (maximum - minimum, maximum)
    coef: torch.Tensor  # float32 [3, 256 * 256]: of (S, H): R, G, B = round(V * coef) in ``hsv2rgb``


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


def hsv_coefficients() -> torch.Tensor:
    """float64 [3, 256 * 256]: by (S, H), the factor k of V that ``hsv2rgb`` rounds to each of R, G, B
    (round(V * k) as a C double): 1 for V, 1 - fs for P, 1 - fs * f for Q (odd sextants) and
    1 - fs * (1 - f) for T, with Pillow's float32 fs = S / 255 and f (the fraction of H * 6 / 255)."""
    s, h = (v.reshape(-1).double() for v in torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij"))
    h6 = h * 6.0 / 255.0
    sextant = h6.floor()
    frac, fs = (h6 - sextant).float(), (s / 255.0).float()
    unit_q = 1.0 - (fs * frac).double()
    unit_t = 1.0 - fs.double() * (1.0 - frac.double())
    coef = torch.stack([torch.ones_like(s), torch.where(sextant.remainder(2) == 1, unit_q, unit_t), 1.0 - fs.double()])
    # R, G, B per sextant 0..5 (6 = 0) take coef 0 (V), 1 (Q or T) or 2 (P):
    # (V,T,P) (Q,V,P) (P,V,T) (P,Q,V) (T,P,V) (V,P,Q)
    by_sextant = torch.tensor([[0, 1, 2, 2, 1, 0], [1, 0, 0, 1, 2, 2], [2, 2, 1, 0, 0, 1]])
    return coef.gather(0, by_sextant[:, sextant.long().remainder(6)])


@functools.lru_cache(maxsize=1)
def _hsv_tables() -> _HSVTables:
    """Pillow's libImaging/Convert.c ``rgb2hsv_row`` and ``hsv2rgb`` evaluated for every 8-bit input, in
    float32 where Pillow uses float and float64 where its expressions promote to double. The factors of
    V are kept in float32: round(V * k) is the same for every V in 0..255 (tests/test_sim_color.py)."""
    a1, a2 = (v.reshape(-1) for v in torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij"))
    cr, maxc = a1, a2  # S: (int)(cr / (float)maxc * 255.0)
    sat = (cr / maxc.clamp(min=1)).double().mul_(255).trunc_().masked_fill_(cr > maxc, 0).int().mul_(256)
    return _HSVTables(_table_hue(), sat, hsv_coefficients().float())


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


class _BoxPasses:
    """Pillow's box passes on int32 levels centred on 128 (x - 128), held in a buffer [A, n + 2r + 2, B]
    padded along dim 1 by r + 1 copies of each edge value (Pillow's line blur repeats the edge pixels).
    One pass: out[k] = (inner * sum(x[k-r..k+r]) + outer * (x[k-r-1] + x[k+r+1]) + 2^23) >> 24, which
    on the centred levels is (inner * S' + outer * F' + const) >> 24 with const = 2^23 - 128 * (2^24 -
    (2r + 1) * inner - 2 * outer): every term stays within int32 (|level| <= 128, weights summing to at
    most 2^24), and the arithmetic shift floors as Pillow's does. Float32 is not exact: the weights
    approximate fractions like 2/3 and 1/6 within 2^-24, so many sums lie just below a half."""

    def __init__(self, sigma: float):
        self.r, self.inner, self.outer = box_blur_weights(sigma)
        const = (1 << 23) - 128 * (_ONE - (2 * self.r + 1) * self.inner - 2 * self.outer)
        self.const = torch.tensor(const, dtype=torch.int32)  # a tensor: torch.add(const, x, alpha=w) is one op

    def buffer(self, levels: torch.Tensor) -> torch.Tensor:
        """Centred int32 levels [A, n, B] -> the padded buffer of its first pass."""
        a, n, b = levels.shape
        buf = torch.empty(a, n + 2 * self.r + 2, b, dtype=torch.int32)
        buf.narrow(1, self.r + 1, n).copy_(levels).sub_(128)
        return self._pad(buf, n)

    def _pad(self, buf: torch.Tensor, n: int) -> torch.Tensor:
        r = self.r
        buf.narrow(1, 0, r + 1).copy_(buf.narrow(1, r + 1, 1).expand(-1, r + 1, -1))
        buf.narrow(1, n + r + 1, r + 1).copy_(buf.narrow(1, n + r, 1).expand(-1, r + 1, -1))
        return buf

    def weighted(self, buf: torch.Tensor) -> torch.Tensor:
        """One pass before the shift: inner * S' + outer * F' + const, [A, n, B]."""
        r, n = self.r, buf.shape[1] - 2 * self.r - 2
        taps = torch.add(self.const, buf.narrow(1, 1, n), alpha=self.inner)  # const: an int32 scalar tensor
        for k in range(2, 2 * r + 2):
            taps.add_(buf.narrow(1, k, n), alpha=self.inner)
        far = buf.narrow(1, 0, n) + buf.narrow(1, 2 * r + 2, n)
        return taps.add_(far, alpha=self.outer)

    def next_buffer(self, weighted: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        """The shifted levels of a pass, viewed as ``shape``, written into the next pass's buffer."""
        a, n, b = shape
        buf = torch.empty(a, n + 2 * self.r + 2, b, dtype=torch.int32)
        torch.bitwise_right_shift(weighted.view(shape), 24, out=buf.narrow(1, self.r + 1, n))
        return self._pad(buf, n)


def gaussian_blur_(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``ImageFilter.GaussianBlur(radius=sigma)``: three box passes along the rows, then three along the
    columns, each rounded to whole levels as Pillow's 8-bit passes are (``_BoxPasses``)."""
    c, h, w = x.shape
    shapes = [(c * h, w, 1)] * 3 + [(c, h, w)] * 3  # passes along dim 1 of each: rows, then columns
    box = _BoxPasses(sigma)
    buf = box.buffer(x.view(shapes[0]))
    for k in range(5):
        buf = box.next_buffer(box.weighted(buf), shapes[k + 1])
    return box.weighted(buf).bitwise_right_shift_(24).add_(128).view(c, h, w).float()
