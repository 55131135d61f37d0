"""The errors of the checkpoint package: every one is a ``CheckpointError`` (a ``ValueError``) whose
message names the file, what is wrong and what to do."""
from __future__ import annotations

import os
from typing import Sequence

__all__ = ["CheckpointError", "CheckpointMismatchError", "FormatMismatchError", "PartialLoadError"]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: the message names the file, what is wrong and what to do."""


class CheckpointMismatchError(CheckpointError, RuntimeError):
    """A checkpoint whose keys or shapes do not fit the model it is loaded into."""


class FormatMismatchError(CheckpointError):
    """A timm / Hugging Face checkpoint with parts the official ViT has no place for (or the reverse)."""


class PartialLoadError(CheckpointMismatchError):
    """A load that would leave parameters of the model at their initial values. ``left_at_init``: their
    names; ``source``: the file. The tools add the flag that accepts such a load
    (``transfer.run_flags.user_error``)."""

    def __init__(self, message: str, source: str | os.PathLike, left_at_init: Sequence[str]):
        super().__init__(message)
        self.source = os.fspath(source)
        self.left_at_init = list(left_at_init)
