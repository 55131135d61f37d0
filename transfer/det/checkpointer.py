"""detectron2's DetectionCheckpointer with atomic writes.

fvcore's ``Checkpointer.save`` streams ``torch.save`` straight into ``model_XXXXXXX.pth`` and rewrites
``last_checkpoint`` in place, so a run killed during a save leaves a truncated checkpoint under its
final name (and ``--resume`` then fails on it). Here both go through a temporary file, fsync and
``os.replace`` (``pretrain.checkpoints.atomic_save`` / ``pretrain.run_dir.atomic_write_text``): a
file under a final name is always complete. Loading reads files through ``pretrain.checkpoints.read_checkpoint``
(``transfer.det.weights.SafeDetectionCheckpointer``): no file runs code when loaded.
"""
from __future__ import annotations

import os
from typing import Any

from pretrain.checkpoints import atomic_save
from pretrain.run_dir import atomic_write_text
from transfer.det.weights import SafeDetectionCheckpointer


class AtomicDetectionCheckpointer(SafeDetectionCheckpointer):
    """Writes the same files as DetectionCheckpointer (``{name}.pth`` holding ``model``, each
    checkpointable's state and the extra data; ``last_checkpoint`` naming it), each one atomically."""

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to %s", path)
        atomic_save(data, path)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write_text(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename)
