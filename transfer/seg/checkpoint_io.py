"""mmengine checkpoints under torch's ``weights_only=True`` default (torch >= 2.6).

mmengine 0.10.7 loads local checkpoints with a bare ``torch.load`` (``load_from_local``), which since
torch 2.6 means ``weights_only=True``; its own training checkpoints hold a ``MessageHub`` state with
``HistoryBuffer`` objects (numpy arrays inside, the statistic functions referenced through
``getattr``), so ``load_from`` and ``resume`` fail (open-mmlab/mmengine#1655, fix #1650 unmerged).

Here the local-file loader is replaced through mmengine's own extension point
(``CheckpointLoader.register_scheme``) by one that keeps ``weights_only=True`` and allow-lists, for the
duration of that load only, exactly the globals mmengine writes (found with
``torch.serialization.get_unsafe_globals_in_checkpoint`` on a checkpoint of ``tools/train_seg.py``).
``getattr`` is among them; the weights-only unpickler still calls only allow-listed functions
(its REDUCE check), so an attribute fetched that way cannot be executed.
"""
from __future__ import annotations

import builtins
import os.path as osp

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

MMENGINE_CHECKPOINT_GLOBALS = [
    HistoryBuffer,  # MessageHub log scalars
    builtins.getattr,  # HistoryBuffer.min / .max / .current / .mean, pickled by qualified name
    np.core.multiarray._reconstruct,  # numpy arrays inside the buffers
    np.core.multiarray.scalar,
    np.ndarray,
    np.dtype,
    *{type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_)},
]


def load_from_local_weights_only(filename: str, map_location=None) -> dict:
    """``torch.load(weights_only=True)`` of a local mmengine checkpoint, allow-listing its globals."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"checkpoint {filename!r} does not exist")
    with torch.serialization.safe_globals(MMENGINE_CHECKPOINT_GLOBALS):
        return torch.load(filename, map_location=map_location, weights_only=True)


def install_checkpoint_loader() -> None:
    """Make mmengine (load_from, resume, Pretrained init) load local files with ``load_from_local_weights_only``."""
    CheckpointLoader.register_scheme(prefixes="", force=True)(load_from_local_weights_only)
