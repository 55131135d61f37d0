"""Load pretraining checkpoints (official MAE / SIM / ConvMAE files, our exports) into a backbone.

``load_backbone_checkpoint(backbone, path_or_state_dict)``:
1. read the file through ``pretrain.checkpoint_io`` (no code from it runs): ``{'model': ...}``,
   ``{'state_dict': ...}``, ``{'module': ...}`` or a plain dict; full official training checkpoints with
   an ``args`` Namespace are accepted, other kinds of file refused with what to do with them; timm and
   Hugging Face ViT-MAE names are mapped to the official ones (``pretrain.checkpoint_formats``);
2. strip wrapper prefixes (``module.``, detectron2's ``backbone.net.`` / ``backbone.bottom_up.``,
   mmseg's ``backbone.``, ``encoder.``);
3. refuse a checkpoint of another architecture (ViT into ConvMAE or back) or size (any shape
   mismatch outside the resizable position tables) with an error naming keys and shapes;
4. resize ``pos_embed`` (class-token slot added/dropped as the backbone needs), ``rel_pos_h/w`` and
   ``relative_position_bias_table`` to the backbone's sizes;
5. load; keys the backbone does not use (decoder, mask token, cls_token, final norm, SIM's ``mm_*``
   target branch / projector / predictor, ConvMAE's ``stage*_output_decode``) are dropped and
   reported, backbone keys the checkpoint lacks (relative position tables) are reported missing.
Returns a ``LoadReport`` (also logged).
"""
from __future__ import annotations

import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping

import torch
import torch.nn as nn

from pretrain.checkpoint_formats import to_official
from pretrain.checkpoint_io import CheckpointKind, classify_checkpoint
from pretrain.models.checkpoint import CheckpointMismatchError, read_state_dict

from .pos_resize import infer_grid, resize_pos_embed
from .rel_pos import resize_rel_pos, resize_rel_pos_bias_table

logger = logging.getLogger(__name__)

__all__ = ["CheckpointMismatchError", "LoadReport", "convert_state_dict", "load_backbone_checkpoint"]

# applied in order: detectron2 wrappers (backbone.net.net. / backbone.bottom_up.net.), mmseg (backbone.net.)
WRAPPER_PREFIXES = ("module.", "backbone.net.", "backbone.bottom_up.", "backbone.", "net.", "encoder.")
# backbone keys a pretraining checkpoint does not have; they keep their (zero) initialisation
# (and the segmentation recipes' layer scale, gamma_1 / gamma_2)
OPTIONAL_KEYS = re.compile(r"(^|\.)(rel_pos_h|rel_pos_w|relative_position_bias_table|gamma_1|gamma_2)$")
# checkpoint keys that are computed here instead of stored
DERIVED_KEYS = re.compile(r"(^|\.)relative_position_index$")


@dataclass
class LoadReport:
    """What a checkpoint load did. ``dropped``: checkpoint keys not used; ``missing``: backbone keys
    left at their initial values; ``resized``: 'key: old shape -> new shape'."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        def groups(keys: list[str], full: bool) -> str:  # "blocks.*.attn.rel_pos_h (24)", "decoder_blocks.* (96)"
            pats = [re.sub(r"\.\d+(?=\.|$)", ".*", k) for k in keys]
            if not full:
                pats = [p[: p.index("*") + 1] if "*" in p else p for p in pats]
            return ", ".join(f"{k} ({n})" for k, n in sorted(Counter(pats).items())) or "none"

        return (
            f"loaded {len(self.loaded)} tensors from {self.source}; "
            f"resized: {'; '.join(self.resized) or 'none'}; "
            f"missing (left at init): {groups(self.missing, True)}; dropped: {groups(self.dropped, False)}"
        )


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Remove wrapper prefixes; when a prefix is found, keys without it are returned as dropped."""
    sd, dropped = dict(state_dict), []
    for prefix in WRAPPER_PREFIXES:
        if any(k.startswith(prefix) for k in sd):
            dropped += [k for k in sd if not k.startswith(prefix)]
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    return sd, dropped


def checkpoint_arch(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """'convmae', 'vit' or None, from the key names (``pretrain.checkpoint_io.classify_checkpoint``)."""
    kind = classify_checkpoint(state_dict)
    if kind is CheckpointKind.CONVMAE:
        return "convmae"
    return "vit" if kind.is_pretraining else None


def _convert_pos_embed(backbone: nn.Module, ckpt: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """Checkpoint pos_embed [1, P + g*g, D] -> the backbone's shape (prefix slots and grid)."""
    own_prefix = getattr(backbone, "num_prefix_tokens", 0)
    own_grid = getattr(backbone, "pretrain_grid", None) or getattr(backbone, "grid", None)
    if own_grid is None:
        own_grid, own_prefix = infer_grid(own.shape[1], own_prefix)
    old_grid, old_prefix = infer_grid(ckpt.shape[1])
    return resize_pos_embed(ckpt, tuple(own_grid), old_grid, old_prefix, own_prefix)


def _check_arch(backbone: nn.Module, sd: Mapping[str, torch.Tensor], source: str) -> None:
    """CheckpointMismatchError unless ``sd`` holds encoder keys of the backbone's architecture."""
    want, found = getattr(backbone, "arch", None), checkpoint_arch(sd)
    if found is None:
        raise CheckpointMismatchError(
            f"{source} holds no encoder keys (expected 'blocks.*' for a ViT or 'blocks3.*' for ConvMAE); "
            f"first keys: {list(sd)[:5]}"
        )
    if want is not None and found != want:
        example = next(k for k in sd if k.startswith(("blocks3.", "blocks.", "patch_embed")))
        raise CheckpointMismatchError(
            f"{source} is a {found} checkpoint (e.g. key '{example}') but the backbone "
            f"{type(backbone).__name__} is a {want}; build the matching backbone "
            f"({'convmae_*' if found == 'convmae' else 'vit_*'}) or pass the right file"
        )


def _resize_to(backbone: nn.Module, key: str, value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``value`` resized to ``target``'s shape where the key has a resize rule (position embeddings,
    relative position tables); unchanged otherwise (the caller reports the mismatch)."""
    if key == "pos_embed":
        return _convert_pos_embed(backbone, value, target)
    if key.endswith(("rel_pos_h", "rel_pos_w")) and value.shape[1:] == target.shape[1:]:
        return resize_rel_pos(value, target.shape[0])
    if key.endswith("relative_position_bias_table") and value.shape[1:] == target.shape[1:]:
        old_grid, _ = infer_grid(value.shape[0])  # (2g-1)^2 rows for a square g x g grid
        new_grid, _ = infer_grid(target.shape[0])
        return resize_rel_pos_bias_table(value, ((old_grid[0] + 1) // 2,) * 2, ((new_grid[0] + 1) // 2,) * 2)
    return value


def convert_state_dict(
    backbone: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
    strict: bool = True,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Map a pretraining state dict onto ``backbone.state_dict()`` names and shapes.

    Returns (state dict holding only backbone keys, report). Raises CheckpointMismatchError for
    another architecture, a shape that cannot be resized, or (``strict``) missing encoder keys."""
    state_dict, names = to_official(state_dict)  # timm / Hugging Face files (before any prefix is stripped)
    report = LoadReport(source if names is None else f"{source} ({names.fmt} converted)")
    sd, report.dropped = strip_prefixes(state_dict)
    report.dropped += names.dropped if names is not None else []
    own = backbone.state_dict()
    _check_arch(backbone, sd, source)

    out, shape_errors = {}, []
    for key, value in sd.items():
        if key not in own or DERIVED_KEYS.search(key):
            report.dropped.append(key)
            continue
        target = own[key]
        if value.shape != target.shape:
            old, value = tuple(value.shape), _resize_to(backbone, key, value, target)
            if value.shape != target.shape:
                shape_errors.append(f"{key}: checkpoint {old} vs backbone {tuple(target.shape)}")
                continue
            report.resized.append(f"{key}: {old} -> {tuple(value.shape)}")
        out[key] = value.to(target.dtype)
    if shape_errors:
        raise CheckpointMismatchError(
            f"{source} does not fit {type(backbone).__name__}: {len(shape_errors)} shape mismatches, first: "
            + "; ".join(shape_errors[:5])
            + ". Is it a checkpoint of another model size? Build the backbone with the checkpoint's "
            "embed_dim / num_heads / depth."
        )
    report.loaded = sorted(out)
    report.missing = [k for k in own if k not in out]
    required = [k for k in report.missing if not OPTIONAL_KEYS.search(k)]
    if strict and required:
        raise CheckpointMismatchError(
            f"{source} lacks {len(required)} backbone keys, first: {required[:5]}; it may be a "
            "shallower model or a partial export. Pass strict=False to load anyway."
        )
    return out, report


def load_backbone_checkpoint(
    backbone: nn.Module,
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
    strict: bool = True,
) -> LoadReport:
    """Load a pretraining checkpoint (path or state dict) into ``backbone``; see module doc."""
    source = "state dict"
    if isinstance(checkpoint, (str, os.PathLike)):
        source = str(checkpoint)
        checkpoint = read_state_dict(checkpoint)
    sd, report = convert_state_dict(backbone, checkpoint, source, strict)
    backbone.load_state_dict(sd, strict=False)
    logger.info("%s", report)
    return report
