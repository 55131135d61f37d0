"""Checkpoint loading with errors that name what does not match."""
from __future__ import annotations

import logging
import os
from typing import Mapping

import torch
import torch.nn as nn

from pretrain.checkpoint_formats import to_official
from pretrain.checkpoint_io import CheckpointError, CheckpointKind, expect_kind, read_checkpoint, state_dict_of

logger = logging.getLogger(__name__)


# Keys of a pretraining model that an encoder-only checkpoint lacks (MAE, ConvMAE).
DECODER_PREFIXES = ("decoder_", "mask_token")


class CheckpointMismatchError(CheckpointError, RuntimeError):
    """A checkpoint whose keys or shapes do not fit the model it is loaded into."""


PRETRAINING_PURPOSE = ("a pretraining checkpoint (official MAE / ConvMAE / SIM file, tools/train_mim.py --export, or a "
                       "timm / Hugging Face ViT-MAE file)")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a pretraining checkpoint file (``['model']`` of the official files), read through
    ``pretrain.checkpoint_io`` (no code from the file runs), in the official names (a timm or Hugging Face
    file is converted by ``pretrain.checkpoint_formats.to_official``, with its report logged); other kinds
    of file are refused with what to do with them (e.g. a training checkpoint: export its encoder first)."""
    obj = read_checkpoint(path)
    expect_kind(obj, path, [k for k in CheckpointKind if k.is_pretraining], PRETRAINING_PURPOSE)
    state, report = to_official(state_dict_of(obj, path))
    if report is not None:
        logger.info("%s: %s", path, report)
    return state


def describe_mismatch(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], allow_missing_prefixes: tuple[str, ...] = (),
    limit: int = 5,
) -> list[str]:
    """Human-readable problems (missing / unexpected keys, shape mismatches), empty when it fits."""
    own = model.state_dict()
    problems = []
    missing = [k for k in own if k not in state_dict and not k.startswith(allow_missing_prefixes)]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    for title, items in (("shape mismatch", shapes), ("missing", missing), ("unexpected", unexpected)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            problems.append(f"{len(items)} {title} keys, first: {'; '.join(items[:limit])}{more}")
    return problems


def load_state_dict_checked(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    allow_missing_prefixes: tuple[str, ...] = (),
    name: str = "checkpoint",
) -> list[str]:
    """Load strictly except for keys under ``allow_missing_prefixes`` (e.g. the decoder when loading an
    encoder-only checkpoint). Raises CheckpointMismatchError naming the first mismatching keys and
    shapes; returns the missing keys that were allowed."""
    problems = describe_mismatch(model, state_dict, allow_missing_prefixes)
    if problems:
        raise CheckpointMismatchError(
            f"{name} does not fit {type(model).__name__}: " + " | ".join(problems)
            + ". Is it a checkpoint of another architecture or size?"
        )
    result = model.load_state_dict(state_dict, strict=False)
    return list(result.missing_keys)


def load_pretrained(
    model: nn.Module,
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
    name: str | None = None,
) -> list[str]:
    """Load a full or an encoder-only checkpoint (a path or a state dict) into a pretraining model.

    Every key of ``model.encoder_state_dict()`` must be present with its shape; the others (decoder, mask
    token, SIM's projector, predictor and momentum branch) may be missing. Unexpected keys are
    errors. Returns the keys left at their initial values.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        name = name or str(checkpoint)
        checkpoint = read_state_dict(checkpoint)
    encoder_keys = set(model.encoder_state_dict())
    optional = tuple(k for k in model.state_dict() if k not in encoder_keys)  # exact keys as prefixes
    return load_state_dict_checked(model, checkpoint, optional, name or "checkpoint")
