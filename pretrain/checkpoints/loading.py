"""Pretraining files into pretraining models: ``read_state_dict`` (a file's state dict in the official
names, other kinds of file refused with what to do with them) and the strict loads built on it."""
from __future__ import annotations

import logging
import os
from typing import Mapping

import torch
import torch.nn as nn

from .files import read_checkpoint
from .formats import to_official
from .kinds import PRETRAINING_KINDS, PRETRAINING_PURPOSE, expect_kind, state_dict_of
from .report import check_fits

logger = logging.getLogger(__name__)

__all__ = ["load_pretrained", "load_state_dict_checked", "read_state_dict", "state_and_source"]

Checkpoint = str | os.PathLike | Mapping[str, torch.Tensor]


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a pretraining checkpoint file (``['model']`` of the official files), read by
    ``read_checkpoint`` (no code from the file runs), in the official names (a timm or Hugging Face file
    is converted by ``formats.to_official``, with its report logged); other kinds of file are refused with
    what to do with them (e.g. a training checkpoint: export its encoder first)."""
    obj = read_checkpoint(path)
    expect_kind(obj, path, PRETRAINING_KINDS, PRETRAINING_PURPOSE)
    state, report = to_official(state_dict_of(obj, path))
    if report is not None:
        logger.info("%s: %s", path, report)
    return state


def state_and_source(checkpoint: Checkpoint, name: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, name for messages) of a pretraining file (``read_state_dict``) or of a state dict."""
    if isinstance(checkpoint, (str, os.PathLike)):
        return read_state_dict(checkpoint), name or os.fspath(checkpoint)
    return dict(checkpoint), name or "state dict"


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                            allow_missing_prefixes: tuple[str, ...] = (), name: str = "checkpoint") -> list[str]:
    """Load strictly except for keys under ``allow_missing_prefixes`` (e.g. the decoder when loading an
    encoder-only checkpoint). Raises CheckpointMismatchError naming the first mismatching keys and
    shapes; returns the missing keys that were allowed."""
    check_fits(model, state_dict, f"{name} does not fit {type(model).__name__}",
               "Is it a checkpoint of another architecture or size?", allow_missing_prefixes)
    return list(model.load_state_dict(state_dict, strict=False).missing_keys)


def load_pretrained(model: nn.Module, checkpoint: Checkpoint, name: str | None = None) -> list[str]:
    """Load a full or an encoder-only checkpoint (a path or a state dict) into a pretraining model.

    Every key of ``model.encoder_state_dict()`` must be present with its shape; the others (decoder, mask
    token, SIM's projector, predictor and momentum branch) may be missing. Unexpected keys are
    errors. Returns the keys left at their initial values.
    """
    state, name = state_and_source(checkpoint, name)
    encoder_keys = set(model.encoder_state_dict())
    optional = tuple(k for k in model.state_dict() if k not in encoder_keys)  # exact keys as prefixes
    return load_state_dict_checked(model, state, optional, name)
