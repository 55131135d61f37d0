"""ConvMAE's convolutional stages 1-2, one construction for the pretraining model and the backbone.

Facts from Alpha-VL/ConvMAE ``models_convvit.py`` / ``DET/models/convmae.py`` (``PatchEmbed``,
``CBlock``): a stage is a non-overlapping strided conv + LayerNorm + GELU, then blocks of

    x = x + drop_path(conv2(attn(mask * conv1(norm1(x)))))      attn: 5x5 depthwise conv
    x = x + drop_path(mlp(norm2(x)))                             mlp: 1x1 convs

Everything but the depthwise conv is per position. The blocks here run on tokens ``[N, P, C]``
(channel-last) with a ``GridLayout`` that says where the P tokens sit on the h x w feature grid:
``GridLayout`` holds every position (the backbone); ``KeptLayout`` only the positions inside the
visible 16x16 patches (masked pretraining). The depthwise conv always runs on the whole grid, with
the absent positions zero, which is exactly the official ``mask * ...`` (masked positions are
zeroed before EVERY depthwise conv, so their values never reach a kept position, and the 2x2 patch
merges stay inside one 16x16 patch): LayerNorm, the 1x1 convs and the MLP run on kept positions
only, a quarter of the grid at mask ratio 0.75, and the kept count is fixed by the ratio (no
data-dependent shapes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import ConvMlp, DropPath


def layer_norm_2d(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over channels of a feature map: x [N, C, H, W] -> [N, C, H, W]."""
    return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv applied to tokens: x [..., C_in] -> [..., C_out] (same weights, as a Linear)."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)


# ---------------------------------------------------------------------------------------------
# Where the tokens sit on the feature grid
# ---------------------------------------------------------------------------------------------
@dataclass
class GridLayout:
    """All h*w positions of a feature grid, row-major: tokens [N, h*w, C] <-> map [N, C, h, w]."""

    height: int
    width: int

    def to_map(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, P, C] -> [N, C, h, w] (channels-last memory)."""
        return x.view(x.shape[0], self.height, self.width, x.shape[-1]).permute(0, 3, 1, 2)

    def from_map(self, m: torch.Tensor) -> torch.Tensor:
        """m [N, C, h, w] -> [N, P, C]."""
        return m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, m.shape[1])


@dataclass
class KeptLayout(GridLayout):
    """The positions inside the kept stage-3 patches: ``index`` [N, P] flat positions on the h x w
    grid, P = K * s * s ordered (kept patch, row, column in the patch); absent positions are zero."""

    index: torch.Tensor

    @classmethod
    def of(cls, ids_keep: torch.Tensor, token_grid: tuple[int, int], scale: int) -> "KeptLayout":
        """ids_keep [N, K] on the stage-3 ``token_grid`` (gh, gw); ``scale`` positions per patch side."""
        gw = token_grid[1]
        width = gw * scale
        sub = torch.arange(scale, device=ids_keep.device)
        rows = (ids_keep // gw)[:, :, None, None] * scale + sub[:, None]  # [N, K, s, 1]
        cols = (ids_keep % gw)[:, :, None, None] * scale + sub[None, :]  # [N, K, 1, s]
        index = (rows * width + cols).flatten(1)  # [N, K*s*s]
        return cls(token_grid[0] * scale, width, index)

    def _expanded(self, channels: int) -> torch.Tensor:
        return self.index.unsqueeze(-1).expand(-1, -1, channels)

    def to_map(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, P, C] -> [N, C, h, w], zero where no token sits."""
        n, _, c = x.shape
        flat = x.new_zeros(n, self.height * self.width, c).scatter(1, self._expanded(c), x)
        return super().to_map(flat)

    def from_map(self, m: torch.Tensor) -> torch.Tensor:
        """m [N, C, h, w] -> [N, P, C] at the layout's positions."""
        return super().from_map(m).gather(1, self._expanded(m.shape[1]))


def patch_tokens(imgs: torch.Tensor, ids_keep: torch.Tensor, patch: int) -> torch.Tensor:
    """imgs [N, C, H, W] -> the pixels of the kept patch x patch patches as tokens [N, K*patch*patch, C],
    ordered as ``KeptLayout`` (kept patch, row, column)."""
    n, c, h, w = imgs.shape
    x = imgs.view(n, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 3, 5, 1)  # [N, gh, gw, p, p, C]
    x = x.reshape(n, -1, patch * patch * c)
    x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # [N, K, p*p*C]
    return x.view(n, -1, c)


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------
class PatchConv(nn.Conv2d):
    """A non-overlapping conv (kernel = stride = p) that also runs inside kept patches.

    ``forward(x)``: x [N, C, H, W] -> [N, C_out, H/p, W/p]. ``forward(x, side)``: x [N, K*side*side, C]
    tokens as ``KeptLayout`` orders them -> [N, K*m*m, C_out] in the same order, m = side / p, computed
    as the Linear the conv is on each p x p cell.
    """

    def __init__(self, in_chans: int, out_chans: int, patch: int):
        super().__init__(in_chans, out_chans, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor, side: int | None = None) -> torch.Tensor:
        if side is None:
            return super().forward(x)
        n, c, p = x.shape[0], x.shape[-1], self.stride[0]
        m = side // p
        cells = x.reshape(-1, m, p, m, p, c).permute(0, 1, 3, 5, 2, 4)  # [N*K, m, m, C, p, p]: the weight's order
        out = F.linear(cells.reshape(-1, c * p * p), self.weight.flatten(1), self.bias)
        return out.view(n, -1, out.shape[-1])


class ConvPatchEmbed(nn.Module):
    """Strided non-overlapping conv + LayerNorm + GELU (official ``PatchEmbed``), no size assert.

    ``forward(x)``: x [N, C_in, H, W] -> [N, C_out, H/p, W/p]; ``forward(x, side)``: the same inside
    each kept patch, tokens [N, K*side*side, C_in] -> [N, K*(side/p)^2, C_out] (``PatchConv``).
    """

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = PatchConv(in_chans, embed_dim, patch_size)
        self.norm = nn.LayerNorm(embed_dim)  # official: nn.LayerNorm default eps (1e-5)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, side: int | None = None) -> torch.Tensor:
        if side is None:
            return self.act(layer_norm_2d(self.norm, self.proj(x)))
        return self.act(self.norm(self.proj(x, side)))


class MaskedConvBlock(nn.Module):
    """Stage-1/2 block (official ``CBlock``): a depthwise-conv "attention" and a 1x1-conv MLP.

    ``forward(x, layout)``: x [N, P, C] tokens placed by ``layout`` -> [N, P, C]. The depthwise conv
    sees the tokens on the layout's full grid with every absent position zero (masked convolution);
    the rest runs on the P tokens only. Parameter names and shapes as the official block.
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0, kernel_size: int = 5, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)  # official: nn.LayerNorm default eps, not the model's norm_layer
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: torch.Tensor, layout: GridLayout) -> torch.Tensor:
        y = pointwise(self.conv1, self.norm1(x))
        y = layout.from_map(self.attn(layout.to_map(y)))  # the only op that mixes positions
        x = x + self.drop_path(pointwise(self.conv2, y))
        mlp = self.mlp
        y = pointwise(mlp.fc2, mlp.drop(mlp.act(pointwise(mlp.fc1, self.norm2(x)))))
        return x + self.drop_path(y)


# ---------------------------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------------------------
def check_stage_args(patch_sizes: Sequence[int], embed_dims: Sequence[int], depths: Sequence[int],
                     mlp_ratios: Sequence[float]) -> None:
    """One entry per stage (3) in each, or ValueError."""
    if len(patch_sizes) != 3 or len(embed_dims) != 3 or len(depths) != 3 or len(mlp_ratios) != 3:
        raise ValueError(
            "patch_sizes, embed_dims, depths and mlp_ratios need one entry per stage (3); got "
            f"{patch_sizes}, {embed_dims}, {depths}, {mlp_ratios}"
        )


def drop_path_rates(drop_path_rate: float, depths: Sequence[int]) -> list[list[float]]:
    """Stochastic depth rising linearly over all blocks of all stages, one list per stage (official
    ``models_convvit.py`` and ``DET/models/convmae.py``: ``torch.linspace(0, rate, sum(depth))``;
    the official pretraining model has no drop path, i.e. rate 0)."""
    rates = [x.item() for x in torch.linspace(0, drop_path_rate, sum(depths), device="cpu")]
    bounds = [0, depths[0], depths[0] + depths[1], sum(depths)]
    return [rates[a:b] for a, b in zip(bounds, bounds[1:])]


class ConvStages:
    """Mixin: ``add_conv_stages`` builds ``patch_embed1..4`` and ``blocks1``/``blocks2`` (official names)
    and sets ``patch_sizes``, ``patch_size`` (their product, 16) and ``embed_dims``."""

    patch_sizes: tuple[int, int, int]

    @property
    def stage_sides(self) -> tuple[int, int]:
        """Positions per side of one stage-3 patch on the stage-1 and stage-2 grids (4, 2)."""
        return self.patch_sizes[1] * self.patch_sizes[2], self.patch_sizes[2]

    def add_conv_stages(
        self,
        in_chans: int,
        patch_sizes: Sequence[int],
        embed_dims: Sequence[int],
        depths: Sequence[int],
        mlp_ratios: Sequence[float],
        conv_kernel_size: int,
        drop_path_rate: float,
    ) -> list[float]:
        """Build the conv stages and stage 3's patch embedding; -> stage 3's drop path rates."""
        check_stage_args(patch_sizes, embed_dims, depths, mlp_ratios)
        self.patch_sizes, self.embed_dims = tuple(patch_sizes), tuple(embed_dims)
        self.patch_size = patch_sizes[0] * patch_sizes[1] * patch_sizes[2]
        (p1, p2, p3), (c1, c2, c3) = patch_sizes, embed_dims
        dpr1, dpr2, dpr3 = drop_path_rates(drop_path_rate, depths)
        self.patch_embed1 = ConvPatchEmbed(p1, in_chans, c1)
        self.patch_embed2 = ConvPatchEmbed(p2, c1, c2)
        self.patch_embed3 = ConvPatchEmbed(p3, c2, c3)
        self.patch_embed4 = nn.Linear(c3, c3)
        self.blocks1 = nn.ModuleList(MaskedConvBlock(c1, mlp_ratios[0], conv_kernel_size, d) for d in dpr1)
        self.blocks2 = nn.ModuleList(MaskedConvBlock(c2, mlp_ratios[1], conv_kernel_size, d) for d in dpr2)
        return dpr3
