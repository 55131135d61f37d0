"""mmengine reads local checkpoint files through ``pretrain.checkpoints.read_checkpoint``.

mmengine 0.10.7 loads local checkpoints (``load_from``, ``resume``, ``Pretrained`` init) with a bare
``torch.load`` (``load_from_local``). Its default under torch >= 2.6, ``weights_only=True`` without an
allow-list, refuses mmengine's own training checkpoints (a ``MessageHub`` state with ``HistoryBuffer``
objects holding numpy arrays; open-mmlab/mmengine#1655); ``weights_only=False`` would run code from any
file. Here the local-file loader is replaced through mmengine's own extension point
(``CheckpointLoader.register_scheme``) by ``read_checkpoint``: ``weights_only=True`` with the project's
one allow-list (numpy arrays, ``HistoryBuffer``; see ``pretrain.checkpoints``), so every file mmengine
opens locally is read the same way as in every other tool.
"""
from __future__ import annotations

import os.path as osp
from typing import Any

from mmengine.runner.checkpoint import CheckpointLoader

from pretrain.checkpoints import read_checkpoint


def load_from_local_weights_only(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-file loader: ``read_checkpoint`` (no code from the file runs). Tensors come back
    on the CPU whatever ``map_location`` says; mmengine copies them into the model and the optimizer,
    which puts them on the parameters' device."""
    return read_checkpoint(osp.expanduser(filename))


def install_checkpoint_loader() -> None:
    """Make mmengine (load_from, resume, Pretrained init) load local files with ``load_from_local_weights_only``."""
    CheckpointLoader.register_scheme(prefixes="", force=True)(load_from_local_weights_only)
