"""Checkpoint conversion, framework-free core: a pretraining checkpoint (official MAE / ConvMAE / SIM
releases or ours) -> the state dict of a fine-tuning model's backbone trunk, under the key path where
that model holds it, ready to be saved in the framework's checkpoint format.

    info = identify_checkpoint(state_dict)            # 'mae' / 'sim' / 'convmae' / 'vit-encoder'
    prefix, trunk = find_trunk(model_or_backbone, "backbone.")
    result = convert_checkpoint(path, trunk, prefix)  # mapping, resizing, report: transfer.backbones
    save_converted(result, out_path, "detectron2")    # or "mmseg"
    convert_into_backbone(path, out_path, framework_backbone, "mmseg")  # the three steps above

The key mapping itself (prefix stripping, SIM's online encoder, dropped decoders, pos_embed / rel-pos
resizing, refusal of another architecture or size) is ``transfer.backbones.convert_state_dict``; this
module adds what a file-to-file conversion needs: recognising the input, refusing files that are not
pretraining checkpoints, locating the trunk in a framework's model, and writing the output.

Where the trunk lives is found, not hard-coded, by walking the model for our backbone classes
(``ViTBackbone`` / ``ConvMAEBackbone``): in the detectron2 LazyConfigs it is ``backbone.net.net.``
(ViTDet: SimpleFeaturePyramid -> MIMBackbone -> net) or ``backbone.bottom_up.net.`` (ConvMAE: FPN ->
MIMBackbone -> net); in the mmseg configs ``backbone.net.`` (MIMViT / MIMConvMAE -> net). The
framework-specific halves (building the model from a config) are ``transfer.det.convert`` and
``transfer.seg.convert``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn as nn

from pretrain.checkpoints import (
    ADVICE, CheckpointKind, CheckpointMismatchError, LoadReport, atomic_save, classify_checkpoint, group_keys,
    state_and_source,
)
from transfer.backbones import ConvMAEBackbone, ViTBackbone, convert_state_dict

__all__ = [
    "ConversionResult", "FORMATS", "convert_checkpoint", "convert_into_backbone", "find_trunk",
    "identify_checkpoint", "save_converted",
]

FORMATS = ("detectron2", "mmseg")
TRUNK_TYPES = (ViTBackbone, ConvMAEBackbone)
# pretraining kinds -> the names this module reports
FAMILIES = {
    CheckpointKind.CONVMAE: "convmae", CheckpointKind.SIM: "sim", CheckpointKind.MAE: "mae",
    CheckpointKind.ENCODER: "vit-encoder",
}


def identify_checkpoint(state_dict: Mapping[str, torch.Tensor]) -> str:
    """What a pretraining state dict is (``pretrain.checkpoints.classify_checkpoint``): 'convmae',
    'sim', 'mae' or 'vit-encoder' (an encoder-only ViT export: MAE's ``mae_pretrain_vit_base.pth`` and
    SIM encoder exports look the same). Raises CheckpointMismatchError for fine-tuned detectors /
    segmentors and for files without encoder keys."""
    kind = classify_checkpoint(state_dict)
    if kind in FAMILIES:
        return FAMILIES[kind]
    if kind in (CheckpointKind.DETECTRON2, CheckpointKind.MMSEG):
        raise CheckpointMismatchError(
            f"this is a fine-tuned {kind.value} (keys like "
            f"'{next(k for k in state_dict if k.startswith(('roi_heads.', 'proposal_generator.', 'decode_head.', 'auxiliary_head.')))}'), "
            f"not a pretraining checkpoint: there is nothing to convert; {ADVICE[kind]}."
        )
    raise CheckpointMismatchError(
        "unrecognised checkpoint: no MAE / SIM ('blocks.*', 'patch_embed.proj.weight') or ConvMAE "
        f"('blocks3.*', 'patch_embed1.*') encoder keys; first keys: {list(state_dict)[:6]}. Expected an official "
        "MAE / ConvMAE / SIM pretraining checkpoint or an encoder.pth written by tools/train_mim.py."
    )


def find_trunk(model: nn.Module, prefix: str = "") -> tuple[str, nn.Module]:
    """(key prefix, module) of the one ``transfer.backbones`` trunk inside ``model``; ``prefix`` is
    prepended (e.g. 'backbone.' when ``model`` is a detector's backbone)."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, TRUNK_TYPES)]
    if len(found) != 1:
        raise ValueError(
            f"expected exactly one ViTBackbone / ConvMAEBackbone inside {type(model).__name__}, found "
            f"{[n or '<root>' for n, _ in found]}; is this a model built from one of this project's configs?"
        )
    name, module = found[0]
    return prefix + (name + "." if name else ""), module


@dataclass
class ConversionResult:
    """The converted tensors (keys with the model's prefix), the input's kind and the key report."""

    state_dict: dict[str, torch.Tensor]
    source: str
    family: str
    prefix: str
    report: LoadReport

    def summary(self) -> str:
        r = self.report
        lines = [
            f"input:   {self.source} ({self.family})",
            f"mapped:  {len(r.loaded)} tensors -> '{self.prefix}*'",
            f"resized: {'; '.join(r.resized) or 'none'}",
            f"missing: {group_keys(r.missing)}",
            f"dropped: {group_keys(r.dropped, full=False)}",
        ]
        return "\n".join(lines)


def convert_checkpoint(
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor], trunk: nn.Module, prefix: str,
    strict: bool = True,
) -> ConversionResult:
    """Map a pretraining checkpoint (path or state dict) onto ``trunk`` (a ``transfer.backbones``
    module), keys prefixed with ``prefix``. Raises CheckpointMismatchError for unreadable files,
    fine-tuned detectors / segmentors, files without encoder keys, another architecture or size."""
    state, source = state_and_source(checkpoint)
    family = identify_checkpoint(state)
    mapped, report = convert_state_dict(trunk, state, source, strict)
    return ConversionResult({prefix + k: v.contiguous() for k, v in mapped.items()}, source, family, prefix, report)


def save_converted(result: ConversionResult, path: str | os.PathLike, fmt: str) -> str:
    """Write ``result`` as a ``detectron2`` checkpoint (``{'model': ...}``, what DetectionCheckpointer
    and ``train.init_checkpoint`` read; heads absent, so detectron2 reports them as not found) or an
    ``mmseg`` one (``{'state_dict': ..., 'meta': ...}``, what mmengine's ``load_from`` reads)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    meta = {"converted_from": result.source, "pretraining": result.family, "prefix": result.prefix}
    if fmt == "detectron2":
        obj = {"model": result.state_dict, "__author__": "transfer.convert", "matching_heuristics": False, **meta}
    else:
        obj = {"state_dict": result.state_dict, "meta": meta}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_save(obj, path)
    return str(path)


def convert_into_backbone(
    checkpoint: str | os.PathLike, output: str | os.PathLike, backbone: nn.Module, fmt: str, strict: bool = True,
) -> ConversionResult:
    """Pretraining checkpoint -> a ``fmt`` checkpoint of the trunk inside a framework model's ``backbone``
    (keys under ``backbone.``): what both framework halves do once they have built their backbone."""
    prefix, trunk = find_trunk(backbone, "backbone.")
    result = convert_checkpoint(checkpoint, trunk, prefix, strict)
    save_converted(result, output, fmt)
    return result
