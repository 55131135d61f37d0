"""What a checkpoint holds, from its key names: ``classify_checkpoint`` names its ``CheckpointKind``,
``expect_kind`` turns a file of the wrong kind into an error that says what to do with it, and
``state_dict_of`` takes its parameter dict out (torch + numpy only)."""
from __future__ import annotations

import enum
import os
import re
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from .errors import CheckpointError

__all__ = [
    "ADVICE", "CheckpointKind", "PRETRAINING_KINDS", "PRETRAINING_PURPOSE", "classify_checkpoint",
    "describe_checkpoint", "expect_kind", "state_dict_of",
]

EXPORT_HINT = "python tools/train_mim.py --export {path} --output encoder.pth"


class CheckpointKind(enum.Enum):
    MAE = "MAE pretraining checkpoint (encoder + decoder)"
    CONVMAE = "ConvMAE pretraining checkpoint"
    SIM = "SIM pretraining checkpoint"
    ENCODER = "ViT encoder (MAE / SIM encoder-only release, or tools/train_mim.py --export)"
    DETECTRON2 = "detectron2 detector checkpoint"
    MMSEG = "mmseg segmentor checkpoint"
    MMSEG_VIT_BACKBONE = ("ViT backbone in mmseg's key names (layers.N.ln1, ...; mmseg's beit2mmseg / vit2mmseg "
                          "converters, mmpretrain)")
    HF_VIT = ("ViT / ViT-MAE in Hugging Face transformers' names (ViTMAEModel / ViTMAEForPreTraining: "
              "vit.embeddings.*, encoder.layer.N or layers.N)")
    TRAINING_STATE = "tools/train_mim.py training checkpoint (model + optimizer + RNG state)"
    UNKNOWN = "unrecognised checkpoint"

    @property
    def is_pretraining(self) -> bool:
        """A pretraining file of an encoder (what a backbone is initialised from)."""
        return self in (CheckpointKind.MAE, CheckpointKind.CONVMAE, CheckpointKind.SIM, CheckpointKind.ENCODER,
                        CheckpointKind.HF_VIT)


# what to do with a file of each kind when a tool expected another one
ADVICE = {
    CheckpointKind.TRAINING_STATE: "export its encoder first, then pass encoder.pth: " + EXPORT_HINT,
    CheckpointKind.DETECTRON2: "pass it to tools/train_det.py --weights (or tools/visualize.py det --weights)",
    CheckpointKind.MMSEG: "pass it to tools/train_seg.py --weights (or tools/visualize.py seg --weights)",
    CheckpointKind.MMSEG_VIT_BACKBONE: "pass it to tools/train_seg.py --weights (it converts mmseg's ViT names)",
    CheckpointKind.UNKNOWN: (
        "pass an official MAE / ConvMAE / SIM pretraining checkpoint, an encoder.pth of tools/train_mim.py, "
        "or a detectron2 / mmseg checkpoint of a whole model"
    ),
}
for _kind in CheckpointKind:
    ADVICE.setdefault(_kind, "pass it where pretraining checkpoints are read: tools/train_det.py / "
                             "tools/train_seg.py --weights, or tools/convert_checkpoint.py")

# keys only a whole fine-tuned model has
DETECTOR_MARKERS = ("roi_heads.", "proposal_generator.")
SEGMENTOR_MARKERS = ("decode_head.", "auxiliary_head.")
# mmseg's / mmpretrain's ViT block names (a backbone-only file, e.g. mmseg's beit2mmseg output, which also
# keeps copies of some official names, patch_embed.proj.*: checked before those)
MMSEG_VIT_BLOCK = re.compile(r"(^|\.)layers\.\d+\.ln1\.")
# Hugging Face transformers' ViT / ViTMAE names, 4.x and 5.x (``formats`` maps them to ours)
HF_VIT_MARKER = re.compile(
    r"(^|\.)(embeddings\.patch_embeddings\.|encoder\.layer\.\d+\.attention\.|layers\.\d+\.attention\.[qkvo]_proj)"
)
TRAINING_STATE_KEYS = {"model", "optimizer", "config", "rng"}  # pretrain.train_state.save_training_state
STATE_DICT_KEYS = ("model", "state_dict", "module")


def _state_mapping(obj: Any) -> Mapping | None:
    """The mapping of parameter names in ``obj`` (``obj['model' | 'state_dict' | 'module']`` or ``obj``)."""
    if not isinstance(obj, Mapping):
        return None
    for key in STATE_DICT_KEYS:
        if isinstance(obj.get(key), Mapping):
            return obj[key]
    return obj


def classify_checkpoint(obj: Any) -> CheckpointKind:
    """What a loaded checkpoint holds, from its key names (official names = ours; wrapper prefixes such as
    ``module.`` or a converted file's ``backbone.net.net.`` do not matter)."""
    if isinstance(obj, Mapping) and TRAINING_STATE_KEYS <= set(obj):
        return CheckpointKind.TRAINING_STATE
    state = _state_mapping(obj)
    keys = [str(k) for k in state] if state is not None else []
    if not keys:
        return CheckpointKind.UNKNOWN
    if any(k.startswith(DETECTOR_MARKERS) for k in keys):
        return CheckpointKind.DETECTRON2
    if any(k.startswith(SEGMENTOR_MARKERS) for k in keys):
        return CheckpointKind.MMSEG
    if any(MMSEG_VIT_BLOCK.search(k) for k in keys):
        return CheckpointKind.MMSEG_VIT_BACKBONE
    if any(HF_VIT_MARKER.search(k) for k in keys):
        return CheckpointKind.HF_VIT
    dotted = ["." + k for k in keys]
    if any(".blocks3." in k or ".patch_embed1." in k for k in dotted):
        return CheckpointKind.CONVMAE
    if any(re.search(r"\.(mm_|projector_decoder_blocks\.|predictor_decoder_blocks\.)", k) for k in dotted):
        return CheckpointKind.SIM
    if any(".decoder_blocks." in k for k in dotted):
        return CheckpointKind.MAE
    if any(".blocks." in k or k.endswith(".patch_embed.proj.weight") for k in dotted):
        return CheckpointKind.ENCODER
    return CheckpointKind.UNKNOWN


def expect_kind(obj: Any, path: str | os.PathLike, accepted: Iterable[CheckpointKind], purpose: str) -> CheckpointKind:
    """The kind of ``obj``; raises CheckpointError saying what to do when it is not one of ``accepted``.
    ``purpose`` completes 'expected ...', e.g. 'a pretraining checkpoint of the backbone'."""
    kind = classify_checkpoint(obj)
    if kind in set(accepted):
        return kind
    found = kind.value
    if kind is CheckpointKind.UNKNOWN:
        state = _state_mapping(obj)
        found += f" (first keys: {[str(k) for k in state][:5]})" if state else f" (a {type(obj).__name__})"
    advice = ADVICE[kind].format(path=path)
    raise CheckpointError(f"{path}: expected {purpose}, found a {found}; {advice}")


def describe_checkpoint(obj: Any, path: str | os.PathLike) -> str:
    """One line for the log: the file, its kind and how many tensors it holds."""
    kind = classify_checkpoint(obj)
    state = _state_mapping(obj) or {}
    n = sum(isinstance(v, (torch.Tensor, np.ndarray)) for v in state.values())
    author = f", written by {obj['__author__']}" if isinstance(obj, Mapping) and "__author__" in obj else ""
    return f"{path}: {kind.value}, {n} tensors{author}"


def state_dict_of(obj: Any, path: str | os.PathLike = "checkpoint") -> dict[str, torch.Tensor]:
    """The parameter dict of a checkpoint (``['model' | 'state_dict' | 'module']`` or the object), numpy
    arrays (detectron2 ``.pkl`` files) as tensors. Raises CheckpointError when there is none."""
    state = _state_mapping(obj)
    if state is None or not state:
        raise CheckpointError(
            f"{path} holds no state dict (a {type(obj).__name__}); expected {{'model': state_dict}}, "
            "{'state_dict': ...} or a plain state dict of tensors"
        )
    out, bad = {}, []
    for key, value in state.items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            value = torch.from_numpy(np.ascontiguousarray(value))
        if isinstance(value, torch.Tensor):
            out[str(key)] = value
        else:
            bad.append(f"{key} ({type(value).__name__})")
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} entries of its state dict are not tensors, first: {bad[:3]}; expected a state dict "
            f"of tensors. {ADVICE[classify_checkpoint(obj)].format(path=path)}"
        )
    return out


PRETRAINING_KINDS = tuple(k for k in CheckpointKind if k.is_pretraining)
PRETRAINING_PURPOSE = ("a pretraining checkpoint (official MAE / ConvMAE / SIM file, tools/train_mim.py --export, or a "
                       "timm / Hugging Face ViT-MAE file)")
