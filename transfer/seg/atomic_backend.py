"""Atomic checkpoint files for mmengine runs.

mmengine's CheckpointHook saves through ``runner.save_checkpoint`` -> ``save_checkpoint`` -> the file
backend's ``put``, and ``LocalBackend.put`` writes straight into ``iter_N.pth``: a run killed during a
save leaves a truncated checkpoint under its final name. ``AtomicLocalBackend`` is LocalBackend with
``put`` / ``put_text`` going through a temporary file, fsync and ``os.replace``
(``pretrain.run_dir.atomic_write``). ``use_atomic_checkpoints(cfg)`` points a config's CheckpointHook
at it (``backend_args=dict(backend="atomic_local")``), so the Runner itself is unchanged.

Not covered: mmengine writes the small ``last_checkpoint`` text file itself with a plain ``open`` (not
through the backend), after the checkpoint it names is complete; a kill inside that one short write
can leave it empty (the checkpoints themselves stay whole). ``--resume`` / ``--eval-only`` then continue
from the newest complete checkpoint of the work dir (``transfer.seg.train.checkpoint_to_resume``).
"""
from __future__ import annotations

import os
from pathlib import Path

from mmengine.config import Config
from mmengine.fileio import LocalBackend, register_backend

from pretrain.run_dir import atomic_write

BACKEND = "atomic_local"


class AtomicLocalBackend(LocalBackend):
    """Local files; writes are atomic (a reader sees the old file or the whole new one)."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(filepath)), exist_ok=True)
        atomic_write(os.fspath(filepath), lambda f: f.write(obj))

    def put_text(self, obj: str, filepath: str | Path, encoding: str = "utf-8") -> None:
        self.put(obj.encode(encoding), filepath)


register_backend(BACKEND, AtomicLocalBackend, force=True)


def use_atomic_checkpoints(cfg: Config) -> None:
    """Make the config's CheckpointHook write through AtomicLocalBackend, unless the config already
    chose a storage backend (e.g. a remote one)."""
    hook = (cfg.get("default_hooks") or {}).get("checkpoint")
    if hook is None or hook.get("backend_args") or hook.get("file_client_args"):
        return
    hook["backend_args"] = dict(backend=BACKEND)
