"""Window geometry for windowed self-attention: partition, unpartition, shifted-window mask.

Pure functions on channel-last token grids ``[B, H, W, C]``; reshapes and permutes only, no loops
over windows. Padding follows detectron2 ``modeling/backbone/utils.py`` (``window_partition``):
zeros on the bottom/right up to a multiple of the window, and the padded tokens take part in the
attention as keys (no masking), so results match detectron2's ViT exactly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_window(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """x [B, H, W, C] -> ([B, Hp, Wp, C] zero-padded bottom/right to multiples of window, (Hp, Wp))."""
    h, w = x.shape[1], x.shape[2]
    pad_h = (window - h % window) % window
    pad_w = (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    return x, (h + pad_h, w + pad_w)


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """x [B, H, W, C] -> (windows [B * nW, window, window, C], (Hp, Wp)); nW = Hp*Wp / window^2.

    Windows are ordered (batch, window row, window column)."""
    x, (hp, wp) = pad_to_window(x, window)
    b, c = x.shape[0], x.shape[-1]
    x = x.view(b, hp // window, window, wp // window, window, c)  # [B, nh, ws, nw, ws, C]
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)  # [B*nh*nw, ws, ws, C]
    return windows, (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, pad_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """windows [B * nW, window, window, C] -> [B, H, W, C] (padding removed)."""
    hp, wp = pad_hw
    h, w = hw
    nh, nw = hp // window, wp // window
    b = windows.shape[0] // (nh * nw)
    x = windows.view(b, nh, nw, window, window, -1)  # [B, nh, nw, ws, ws, C]
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)  # [B, Hp, Wp, C]
    if hp > h or wp > w:
        x = x[:, :h, :w, :].contiguous()
    return x


def shifted_window_mask(
    pad_hw: tuple[int, int], window: int, shift: int, device: torch.device | None = None
) -> torch.Tensor:
    """Additive attention mask of Swin's cyclically shifted windows -> [nW, ws*ws, ws*ws].

    After ``torch.roll(x, (-shift, -shift), (1, 2))`` on the padded grid [Hp, Wp], the last window
    row/column holds tokens from up to three regions that were not adjacent in the image; pairs of
    tokens from different regions get -inf, all others 0 (Liu et al. 2021, Sec. 3.2).
    """
    hp, wp = pad_hw

    def region(n: int) -> torch.Tensor:  # [n] region label along one axis: 0 | 1 | 2
        r = torch.zeros(n, dtype=torch.long, device=device)
        r[n - window: n - shift] = 1
        r[n - shift:] = 2
        return r

    labels = (region(hp)[:, None] * 3 + region(wp)[None, :])[None, :, :, None]  # [1, Hp, Wp, 1]
    windows, _ = window_partition(labels, window)  # [nW, ws, ws, 1]
    windows = windows.reshape(windows.shape[0], window * window)  # [nW, L]
    same = windows[:, :, None] == windows[:, None, :]  # [nW, L, L]
    zero = torch.zeros((), device=device)
    return torch.where(same, zero, torch.full((), float("-inf"), device=device))
