"""A pretraining state dict onto a module's names and shapes, with a ``LoadReport`` (framework-free):

1. timm and Hugging Face ViT-MAE names become the official ones (``formats.to_official``);
2. wrapper prefixes go (``module.``, detectron2's ``backbone.net.`` / ``backbone.bottom_up.``, mmseg's
   ``backbone.``, ``encoder.``);
3. a checkpoint of another architecture (ViT into ConvMAE or back: the module's ``arch``) or size (a
   shape that no resize rule fixes) is refused with CheckpointMismatchError naming keys and shapes;
4. position tables are resized by the caller's ``resize(key, value, target)`` rule (the backbones'
   rules for ``pos_embed`` and relative position tables live with the backbones);
5. keys the module does not use (decoder, mask token, SIM's target branch, ...) are dropped, module keys
   the checkpoint lacks are reported missing; with ``strict``, missing keys other than the optional ones
   (relative position tables, layer scales) raise PartialLoadError.
"""
from __future__ import annotations

import re
from typing import Callable, Mapping

import torch
import torch.nn as nn

from .errors import CheckpointMismatchError
from .formats import to_official
from .kinds import CheckpointKind, classify_checkpoint
from .report import LoadReport, require_loaded

__all__ = ["OPTIONAL_KEYS", "Resize", "checkpoint_arch", "map_state_dict", "strip_prefixes"]

Resize = Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]  # (key, checkpoint value, module's) -> value

# applied in order: detectron2 wrappers (backbone.net.net. / backbone.bottom_up.net.), mmseg (backbone.net.)
WRAPPER_PREFIXES = ("module.", "backbone.net.", "backbone.bottom_up.", "backbone.", "net.", "encoder.")
# module keys a pretraining checkpoint does not have; they keep their (zero) initialisation
# (and the segmentation recipes' layer scale, gamma_1 / gamma_2)
OPTIONAL_KEYS = re.compile(r"(^|\.)(rel_pos_h|rel_pos_w|relative_position_bias_table|gamma_1|gamma_2)$")
# checkpoint keys that are computed by the module instead of stored
DERIVED_KEYS = re.compile(r"(^|\.)relative_position_index$")


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Remove wrapper prefixes; when a prefix is found, keys without it are returned as dropped."""
    sd, dropped = dict(state_dict), []
    for prefix in WRAPPER_PREFIXES:
        if any(k.startswith(prefix) for k in sd):
            dropped += [k for k in sd if not k.startswith(prefix)]
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    return sd, dropped


def checkpoint_arch(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """'convmae', 'vit' or None, from the key names (``classify_checkpoint``)."""
    kind = classify_checkpoint(state_dict)
    if kind is CheckpointKind.CONVMAE:
        return "convmae"
    return "vit" if kind.is_pretraining else None


def check_arch(module: nn.Module, sd: Mapping[str, torch.Tensor], source: str) -> None:
    """CheckpointMismatchError unless ``sd`` holds encoder keys of the module's ``arch`` (if it has one)."""
    want, found = getattr(module, "arch", None), checkpoint_arch(sd)
    if found is None:
        raise CheckpointMismatchError(
            f"{source} holds no encoder keys (expected 'blocks.*' for a ViT or 'blocks3.*' for ConvMAE); "
            f"first keys: {list(sd)[:5]}"
        )
    if want is not None and found != want:
        example = next(k for k in sd if k.startswith(("blocks3.", "blocks.", "patch_embed")))
        raise CheckpointMismatchError(
            f"{source} is a {found} checkpoint (e.g. key '{example}') but the backbone "
            f"{type(module).__name__} is a {want}; build the matching backbone "
            f"({'convmae_*' if found == 'convmae' else 'vit_*'}) or pass the right file"
        )


def _fitted(sd: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], resize: Resize | None,
            report: LoadReport) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(checkpoint tensors under the module's keys, resized where needed, in its dtypes; shape errors)."""
    out, shape_errors = {}, []
    for key, value in sd.items():
        if key not in own or DERIVED_KEYS.search(key):
            report.dropped.append(key)
            continue
        target = own[key]
        if value.shape != target.shape:
            old = tuple(value.shape)
            value = resize(key, value, target) if resize is not None else value
            if value.shape != target.shape:
                shape_errors.append(f"{key}: checkpoint {old} vs backbone {tuple(target.shape)}")
                continue
            report.resized.append(f"{key}: {old} -> {tuple(value.shape)}")
        out[key] = value.to(target.dtype)
    return out, shape_errors


def map_state_dict(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint", strict: bool = True,
    resize: Resize | None = None,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Map a pretraining state dict onto ``module.state_dict()`` names and shapes (see the module doc).

    Returns (state dict holding only the module's keys, report). Raises CheckpointMismatchError for
    another architecture or a shape that cannot be resized, PartialLoadError (``strict``) for missing
    keys that are not optional."""
    state_dict, names = to_official(state_dict)  # timm / Hugging Face files (before any prefix is stripped)
    report = LoadReport(source if names is None else f"{source} ({names.fmt} converted)")
    sd, report.dropped = strip_prefixes(state_dict)
    report.dropped += names.dropped if names is not None else []
    own = module.state_dict()
    check_arch(module, sd, source)
    out, shape_errors = _fitted(sd, own, resize, report)
    if shape_errors:
        raise CheckpointMismatchError(
            f"{source} does not fit {type(module).__name__}: {len(shape_errors)} shape mismatches, first: "
            + "; ".join(shape_errors[:5])
            + ". Is it a checkpoint of another model size? Build the backbone with the checkpoint's "
            "embed_dim / num_heads / depth."
        )
    report.loaded = sorted(out)
    report.missing = [k for k in own if k not in out]
    require_loaded([k for k in report.missing if not OPTIONAL_KEYS.search(k)], source, allow_partial=not strict)
    return out, report
