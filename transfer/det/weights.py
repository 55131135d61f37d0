"""``--weights`` for detection: one read of the file (``pretrain.checkpoints``), then either a
whole-detector checkpoint into the detector or a pretraining checkpoint into the backbone trunk, and an
error (``PartialLoadError``) when backbone parameters would be left at their initial values.

Whole detectors come in two layouts for the trunk: ours (``backbone.net.net.*`` for ViTDet,
``backbone.bottom_up.net.*`` for ConvMAE: our ``MIMBackbone`` wraps the trunk as ``.net``) and the
official ones (detectron2's released ViTDet ``model_final_*.pkl``: ``backbone.net.*``; the ConvMAE
detectors: ``backbone.bottom_up.*``). The trunk's keys are mapped by
``transfer.backbones.convert_state_dict`` (the same mapping as for pretraining files, with its
position-table resizing), everything else (neck, heads) loads under its own name through detectron2's
checkpointer, whose ``.pkl`` reader is replaced by ``read_checkpoint`` (``SafeDetectionCheckpointer``).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import torch
import torch.nn as nn
from detectron2.checkpoint import DetectionCheckpointer

from pretrain.checkpoints import (
    OPTIONAL_KEYS, PRETRAINING_KINDS, CheckpointError, CheckpointKind, LoadReport, describe_checkpoint, expect_kind,
    read_checkpoint, require_loaded, state_dict_of,
)
from transfer.backbones import convert_state_dict, load_backbone_checkpoint
from transfer.convert import TRUNK_TYPES, find_trunk

logger = logging.getLogger("detectron2")

ACCEPTED = [CheckpointKind.DETECTRON2, *PRETRAINING_KINDS]
PURPOSE = "a pretraining checkpoint of the backbone (MAE / ConvMAE / SIM) or a detectron2 checkpoint of the detector"
EXPECTED_AT_INIT = (
    " Relative position tables (rel_pos_h / rel_pos_w, relative_position_bias_table) and layer scales"
    " (gamma_1 / gamma_2), which pretraining files lack, are expected to stay at init and are not counted."
)


class SafeDetectionCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer whose files are read by ``pretrain.checkpoints.read_checkpoint``: its
    ``.pkl`` models no longer go through plain pickle, and no file runs code when loaded."""

    def _load_file(self, filename: str) -> dict[str, Any]:
        obj = read_checkpoint(self.path_manager.get_local_path(filename))
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"{filename} holds a {type(obj).__name__}, not a checkpoint dict; {PURPOSE}")
        obj = dict(obj)
        if "model" in obj and "__author__" in obj:  # detectron2's own format (.pkl model zoo, our conversions)
            return obj
        if filename.endswith(".pkl"):  # Caffe2 / Detectron1 model zoo: name heuristics, as detectron2 does
            blobs = obj.get("blobs", obj)
            return {"model": {k: v for k, v in blobs.items() if not k.endswith("_momentum")},
                    "__author__": "Caffe2", "matching_heuristics": True}
        return {**(obj if "model" in obj else {"model": obj}), "matching_heuristics": True}


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _trunk_owner(prefix: str) -> str:
    """The key prefix of the module that holds the trunk as ``.net`` (``backbone.net.`` for
    ``backbone.net.net.``): detector files without our wrapper keep the trunk's keys right under it."""
    return prefix[: -len("net.")] if prefix.endswith(".net.") else prefix


def load_detector(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Load a whole-detector state dict; returns the backbone keys left at init (not counting the
    expected ones). The trunk part is mapped onto our trunk from either layout (see module doc)."""
    trunks = [m for m in model.modules() if isinstance(m, TRUNK_TYPES)]
    prefix, trunk = find_trunk(model) if len(trunks) == 1 else ("", None)  # else: detectron2's own backbones
    owner = _trunk_owner(prefix) if trunk is not None else None
    trunk_part = {k[len(owner):]: v for k, v in state.items() if k.startswith(owner)} if owner else {}
    rest = {k: v for k, v in state.items() if not (owner and k.startswith(owner))}
    report = LoadReport(source)
    if trunk_part:
        mapped, report = convert_state_dict(trunk, trunk_part, source, strict=False)
        rest.update({prefix + k: v for k, v in mapped.items()})
    checkpointer = SafeDetectionCheckpointer(model)
    incompatible = checkpointer._load_model({"model": rest, "__author__": source, "matching_heuristics": False})
    checkpointer._log_incompatible_keys(incompatible)
    if report.resized or report.dropped:
        logger.info("backbone trunk of %s: %s", source, report)
    bad_shapes = [k for k, *_ in incompatible.incorrect_shapes]
    return [k for k in list(incompatible.missing_keys) + bad_shapes
            if k.startswith("backbone.") and not OPTIONAL_KEYS.search(k)]


def load_pretraining(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Map a pretraining state dict into the backbone trunk; returns the trunk keys left at init (not
    counting the expected ones)."""
    prefix, trunk = find_trunk(model)
    report = load_backbone_checkpoint(trunk, state, strict=False, name=source, log=logger.info,
                                      title=f"Loaded pretraining checkpoint into the backbone ({prefix}*): ")
    return [prefix + k for k in report.missing if not OPTIONAL_KEYS.search(k)]


def load_weights(model: nn.Module, path: str | os.PathLike, allow_partial: bool = False,
                 detector_only: bool = False) -> CheckpointKind | None:
    """``--weights``: read ``path`` once, load it as a whole detector or into the backbone, and refuse
    (PartialLoadError) a file that leaves backbone parameters at init unless ``allow_partial``.
    ``detector_only`` (evaluation, visualisation): refuse pretraining files, whose heads would be random.
    No path: nothing is loaded (None)."""
    if not path:
        return None
    source = os.fspath(path)
    obj = read_checkpoint(source)
    if detector_only:
        kind = expect_kind(obj, source, [CheckpointKind.DETECTRON2], "a detectron2 checkpoint of the trained detector")
    else:
        kind = expect_kind(obj, source, ACCEPTED, PURPOSE)
    logger.info("Loading weights: %s", describe_checkpoint(obj, source))
    state = state_dict_of(obj, source)
    model = _unwrap(model)
    loader = load_detector if kind is CheckpointKind.DETECTRON2 else load_pretraining
    left = loader(model, state, source)
    require_loaded(left, source, allow_partial, EXPECTED_AT_INIT)
    if left:
        logger.warning("%d backbone parameters left at init (allowed: allow_partial_weights): %s",
                       len(left), left[:10])
    return kind
