"""SIM: Siamese Image Modeling for Self-Supervised Vision Representation Learning (Tao et al., 2023).

Facts from OpenGVLab/Siamese-Image-Modeling ``models_sim.py`` (loss_type 'sim'):
- online branch: ViT encoder on the visible patches of view 1 (block-wise mask) + cls token, *no*
  final norm; projector = ``decoder_embed`` + ``projector_decoder_blocks`` (BatchNorm blocks);
- predictor: ``predictor_decoder_blocks`` over [cls, visible view-1 tokens, one mask token per
  view-2 patch]; view-1 tokens get ``decoder_pos_embed``, view-2 queries get
  ``decoder_pos_mlp(relative_pos_embed(...))``, the sin-cos embedding of view 2's patches in
  view 1's coordinates plus the scale change; ``decoder_pred`` maps to the target space;
- target branch ``mm_*``: EMA of the online encoder/projector on the full view 2, outputs
  normalised by ``teacher_norm`` (LayerNorm without weights);
- loss: UniGrad (``unigrad_loss``).
Parameter names equal the official ones (checked against its ViT-B/16 1600-epoch model).
"""
from __future__ import annotations

from functools import partial

import torch
import torch.distributed as dist
import torch.nn as nn
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block

from ..masking import gather_tokens
from ..registry import register_model
from ..vit_common import ClassTokenViT, fixed_pos_embed, init_patch_projection, init_vit_weights, pos_embed_for_grid
from .geometry import RelativeCrop, relative_pos_embed
from .masking import visible_indices


class PermuteBN(nn.Module):
    """BatchNorm1d over the channels of tokens [N, L, C], in float32 (the official projector and
    predictor norm; convert to SyncBatchNorm under DDP as the official main_pretrain.py does)."""

    def __init__(self, dim: int, device=None, dtype=None):  # timm >= 1.0.20 passes device/dtype
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            # statistics per channel over all N*L tokens, identical to the official BN on
            # [N, C, L]; the flat [N*L, C] layout avoids transposes (which trip torch.compile's
            # AOT autograd in BN + Linear backward)
            return self.bn(x.float().reshape(-1, x.shape[-1])).reshape(x.shape)


def unigrad_loss(pred: torch.Tensor, target: torch.Tensor, neg_weight: float = 0.02) -> torch.Tensor:
    """UniGrad loss (Tao et al., "Exploring the Equivalence of Siamese Self-Supervised Learning via
    A Unified Gradient Framework"), as SIM computes it on dense tokens.

    pred, target [..., D] (flattened to M = prod(...) rows; target is treated as constant):
        pos = mean_m ||p_m - t_m||^2
        C   = T^T T / M, averaged over ranks when torch.distributed is initialised
        neg = mean_m p_m^T C p_m
        loss = (pos + neg_weight * neg) / D
    Computed in float32 without autocast.
    """
    d = pred.shape[-1]
    with torch.autocast(device_type=pred.device.type, enabled=False):
        p = pred.reshape(-1, d).float()
        with torch.no_grad():
            t = target.reshape(-1, d).float()
            corr = t.T @ t / t.shape[0]  # [D, D]
            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                dist.all_reduce(corr)
                corr = corr / dist.get_world_size()
        pos_term = ((p - t) ** 2).sum(-1).mean()
        neg_term = ((p @ corr) * p).sum(-1).mean()  # diag(P C P^T) without the M x M matrix
        return (pos_term + neg_weight * neg_term) / d


class SiameseIMViT(ClassTokenViT, nn.Module):
    """SIM with ViT backbone. See the module docstring; ``forward`` documents the inputs."""

    # (online, momentum) pairs updated by EMA, as the official mm_update (parameters, not BN stats)
    MOMENTUM_PAIRS = (
        ("patch_embed", "mm_patch_embed"),
        ("blocks", "mm_blocks"),
        ("cls_token", "mm_cls_token"),
        ("decoder_embed", "mm_decoder_embed"),
        ("mask_token", "mm_mask_token"),
        ("projector_decoder_blocks", "mm_projector_decoder_blocks"),
    )

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        decoder_embed_dim: int = 768,
        decoder_num_heads: int = 16,
        projector_depth: int = 2,
        predictor_depth: int = 4,
        mlp_ratio: float = 4.0,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_proj_ln: bool = False,
        use_pred_ln: bool = False,
        online_ln: bool = False,
        neg_weight: float = 0.02,
        drop_path_rate: float = 0.0,
        init_values: float | None = None,
        train_patch_embed: bool = False,
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        self.neg_weight = neg_weight
        self.grad_checkpointing = grad_checkpointing
        dd = decoder_embed_dim

        def blocks(dim, heads, n, norm, dpr=None, ls=None):
            dpr = dpr or [0.0] * n
            return nn.ModuleList(
                [
                    Block(dim, heads, mlp_ratio, qkv_bias=True, norm_layer=norm, drop_path=dpr[i], init_values=ls)
                    for i in range(n)
                ]
            )

        # online encoder (no final norm)
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, strict_img_size=False)
        self.grid_size = tuple(self.patch_embed.grid_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = fixed_pos_embed(embed_dim, self.grid_size)  # [1, 1 + L, D]
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linspace(0, rate, depth)
        self.blocks = blocks(embed_dim, num_heads, depth, norm_layer, dpr, init_values)

        # online projector and predictor
        self.decoder_embed = nn.Linear(embed_dim, dd, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_pos_embed = fixed_pos_embed(dd, self.grid_size)
        proj_norm = norm_layer if use_proj_ln else PermuteBN
        self.projector_decoder_blocks = blocks(dd, decoder_num_heads, projector_depth, proj_norm)
        pred_norm = norm_layer if use_pred_ln else PermuteBN
        self.predictor_decoder_blocks = blocks(dd, decoder_num_heads, predictor_depth, pred_norm)
        self.decoder_pred = nn.Linear(dd, dd, bias=True)
        self.student_norm = nn.LayerNorm(dd) if online_ln else nn.Identity()
        self.decoder_pos_mlp = nn.Linear(2 * dd, dd)  # relative embedding (2*dd) -> dd
        self.initialize_weights()

        # momentum (target) branch: copies of the online modules, updated only by EMA
        self.mm_patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, strict_img_size=False)
        self.mm_cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.mm_blocks = blocks(embed_dim, num_heads, depth, norm_layer, None, init_values)
        self.mm_decoder_embed = nn.Linear(embed_dim, dd, bias=True)
        self.mm_mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.mm_projector_decoder_blocks = blocks(dd, decoder_num_heads, projector_depth, proj_norm)
        self.teacher_norm = nn.LayerNorm(dd, elementwise_affine=False)
        for online, target in self.MOMENTUM_PAIRS:
            src, dst = getattr(self, online), getattr(self, target)
            if isinstance(src, nn.Parameter):
                dst.data.copy_(src.data)
            else:
                dst.load_state_dict(src.state_dict())  # incl. BN running statistics
        for name, p in self.named_parameters():
            if name.startswith("mm_"):
                p.requires_grad = False
        for p in self.student_norm.parameters():
            p.requires_grad = False
        if not train_patch_embed:  # official default: frozen random patch projection
            self.patch_embed.requires_grad_(False)

    def initialize_weights(self) -> None:
        init_patch_projection(self.patch_embed.proj)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(init_vit_weights)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The online encoder: cls_token, pos_embed, patch_embed.*, blocks.* (SIM has no final norm)."""
        return {
            k: v
            for k, v in self.state_dict().items()
            if k in ("cls_token", "pos_embed") or k.startswith(("patch_embed.", "blocks."))
        }

    # ---------------------------------------------------------------- momentum branch
    def _momentum_params(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        online, target = [], []
        for o_name, t_name in self.MOMENTUM_PAIRS:
            o, t = getattr(self, o_name), getattr(self, t_name)
            if isinstance(o, nn.Parameter):
                online.append(o)
                target.append(t)
            else:
                online += list(o.parameters())
                target += list(t.parameters())
        return online, target

    @torch.no_grad()
    def update_momentum(self, m: float) -> None:
        """EMA of the online into the momentum branch: mm = mm * m + online * (1 - m)."""
        online, target = self._momentum_params()
        online = [p.detach() for p in online]
        torch._foreach_mul_(target, m)
        torch._foreach_add_(target, online, alpha=1.0 - m)

    # ---------------------------------------------------------------- paper steps
    def forward_online(self, x1: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """View 1 [N, 3, H, W], ids_keep [N, K] -> projected tokens [N, 1 + K, Dd] (cls first)."""
        x, pos = self.embed_patches(x1)
        x = self.decoder_embed(self.encode_tokens(gather_tokens(x, ids_keep), pos))  # [N, 1 + K, Dd]
        return self.run_blocks(self.projector_decoder_blocks, x)

    def forward_predictor(
        self, z1: torch.Tensor, ids_keep: torch.Tensor, rel_pos_21: RelativeCrop | tuple, grid: tuple[int, int]
    ) -> torch.Tensor:
        """z1 [N, 1 + K, Dd] -> predictions for every view-2 patch [N, L, Dd]."""
        n = z1.shape[0]
        dpos = pos_embed_for_grid(self.decoder_pos_embed, grid, self.grid_size)  # [1, 1 + L, Dd]
        vis_pos = gather_tokens(dpos[:, 1:].expand(n, -1, -1), ids_keep)  # [N, K, Dd]
        rel = relative_pos_embed(rel_pos_21, grid, dpos.shape[-1])  # [N, L, 2 Dd]
        q_pos = self.decoder_pos_mlp(rel.to(self.decoder_pos_mlp.weight.dtype))  # [N, L, Dd]
        queries = self.mask_token + q_pos
        x = torch.cat([z1[:, :1] + dpos[:, :1], z1[:, 1:] + vis_pos, queries.to(z1.dtype)], dim=1)
        x = self.run_blocks(self.predictor_decoder_blocks, x)
        x = self.decoder_pred(x)
        return x[:, -q_pos.shape[1]:]

    @torch.no_grad()
    def forward_target(self, x2: torch.Tensor) -> torch.Tensor:
        """View 2 [N, 3, H, W] -> momentum encoder + projector tokens [N, L, Dd] (cls dropped)."""
        grid = (x2.shape[-2] // self.patch_size, x2.shape[-1] // self.patch_size)
        x = self.mm_patch_embed(x2)
        x = torch.cat([self.mm_cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + pos_embed_for_grid(self.pos_embed, grid, self.grid_size)
        x = self.run_blocks(self.mm_blocks, x)  # no_grad: never checkpointed
        x = self.mm_decoder_embed(x)
        x = self.run_blocks(self.mm_projector_decoder_blocks, x)
        return x[:, 1:]

    def forward_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """UniGrad between student_norm(pred) and teacher_norm(target), both [N, L, Dd]."""
        pred = self.student_norm(pred.float())
        with torch.no_grad():
            target = self.teacher_norm(target.float())
        return unigrad_loss(pred, target, self.neg_weight)

    def forward(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        rel_pos_21: RelativeCrop | tuple,
        mm: float,
        update_mm: bool,
        mask: torch.Tensor | None = None,
        num_masked: int | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One SIM step, the official signature.

        x1, x2: the two views [N, 3, H, W] (x1 masked -> online; x2 full -> momentum target).
        rel_pos_21: ``RelativeCrop`` of view 2 relative to view 1 (delta_i, delta_j, delta_h,
            delta_w, relative_flip, flip_delta_j), each [N]; see ``geometry.relative_crop``.
        mm: EMA momentum; update_mm: apply ``update_momentum(mm)`` before the target pass (the
            official engine sets it at the first micro-batch of each accumulation step).
        mask: block-wise mask of view 1, [N, L] or [N, gh, gw], 1 = masked; every row must have
            the same count. num_masked: that count; when omitted it is read from ``mask[0]`` (one
            device-host sync).
        Returns (loss, {'loss_sim': detached loss}).
        """
        if mask is None:
            raise ValueError("SIM needs the block-wise mask of view 1 (pretrain.models.sim.masking.block_wise_mask)")
        mask = mask.reshape(mask.shape[0], -1)
        if num_masked is None:
            num_masked = int(mask[0].sum())
        ids_keep = visible_indices(mask, num_masked)  # [N, K] raster order, as the official x[~mask]
        grid = (x1.shape[-2] // self.patch_size, x1.shape[-1] // self.patch_size)

        z1 = self.forward_online(x1, ids_keep)
        pred = self.forward_predictor(z1, ids_keep, rel_pos_21, grid)
        if update_mm:
            self.update_momentum(mm)
        target = self.forward_target(x2)
        loss = self.forward_loss(pred, target)
        return loss, {"loss_sim": loss.detach()}


def _sim(**kwargs) -> SiameseIMViT:
    # decoder 768-d, projector 2 / predictor 4 blocks: configs/pretrain/dist_sim_base_1600ep.sh
    cfg = dict(decoder_embed_dim=768, decoder_num_heads=16, projector_depth=2, predictor_depth=4)
    cfg.update(kwargs)
    return SiameseIMViT(**cfg)


@register_model
def sim_vit_base_patch16(**kwargs) -> SiameseIMViT:
    return _sim(**{**dict(patch_size=16, embed_dim=768, depth=12, num_heads=12), **kwargs})


@register_model
def sim_vit_large_patch16(**kwargs) -> SiameseIMViT:
    """ViT-L/16; no official large pretraining script: the base script's head sizes are used."""
    return _sim(**{**dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16), **kwargs})


@register_model
def sim_vit_tiny_patch16(**kwargs) -> SiameseIMViT:
    """CPU test/demo size: 64x64 input (4x4 grid), 64-d x 2 blocks, 1 projector / 1 predictor block."""
    cfg = dict(
        img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2,
        decoder_embed_dim=64, decoder_num_heads=2, projector_depth=1, predictor_depth=1,
    )
    return _sim(**{**cfg, **kwargs})
