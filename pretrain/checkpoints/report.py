"""What a load did or would do, in words: the one ``LoadReport`` (loaded / resized / dropped / left at
init), the one key-mismatch check (missing / unexpected / shape) and the refusal of a load that leaves
parameters at their initial values (``PartialLoadError``). Keys are summarised by ``group_keys``."""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch
import torch.nn as nn

from .errors import CheckpointMismatchError, PartialLoadError

__all__ = ["KeyMismatch", "LoadReport", "check_fits", "describe_mismatch", "group_keys", "key_mismatch",
           "require_loaded"]


def group_keys(keys: Iterable[str], full: bool = True, limit: int | None = None) -> str:
    """'blocks.*.attn.qkv.weight (12), pos_embed (1)': keys with layer numbers folded to '*', counted and
    sorted; ``full=False`` cuts each at its first '*' ('decoder_blocks.* (96)'); 'none' for no keys; with
    ``limit``, the first ``limit`` groups and '(+N more groups)'."""
    patterns = [re.sub(r"\.\d+(?=\.|$)", ".*", k) for k in keys]
    if not full:
        patterns = [p[: p.index("*") + 1] if "*" in p else p for p in patterns]
    groups = sorted(Counter(patterns).items())
    shown = groups if limit is None else groups[:limit]
    more = f" (+{len(groups) - len(shown)} more groups)" if len(shown) < len(groups) else ""
    return (", ".join(f"{k} ({n})" for k, n in shown) or "none") + more


@dataclass
class LoadReport:
    """What a checkpoint load did. ``dropped``: checkpoint keys not used; ``missing``: model keys left
    at their initial values; ``resized``: 'key: old shape -> new shape'."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"loaded {len(self.loaded)} tensors from {self.source}; "
            f"resized: {'; '.join(self.resized) or 'none'}; "
            f"missing (left at init): {group_keys(self.missing)}; dropped: {group_keys(self.dropped, full=False)}"
        )


@dataclass
class KeyMismatch:
    """Keys of the model the checkpoint lacks, checkpoint keys the model lacks, and shape differences
    ('key: checkpoint (a, b) vs model (c, d)')."""

    missing: list[str]
    unexpected: list[str]
    shapes: list[str]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)


def key_mismatch(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                 allow_missing_prefixes: tuple[str, ...] = ()) -> KeyMismatch:
    """How ``state`` differs from the model's state dict ``own`` (keys under ``allow_missing_prefixes``
    may be missing)."""
    return KeyMismatch(
        missing=[k for k in own if k not in state and not k.startswith(allow_missing_prefixes)],
        unexpected=[k for k in state if k not in own],
        shapes=[f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                for k in own if k in state and state[k].shape != own[k].shape],
    )


def describe_mismatch(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                      allow_missing_prefixes: tuple[str, ...] = (), limit: int = 5,
                      groups: int | None = None) -> list[str]:
    """Human-readable problems (missing / unexpected keys, shape mismatches), empty when it fits. Each
    names its first ``limit`` entries; with ``groups``, missing and unexpected keys are named by
    ``group_keys`` instead (at most ``groups`` groups: for models with many keys, e.g. a segmentor)."""
    found = key_mismatch(model.state_dict(), state_dict, allow_missing_prefixes)
    problems = []
    for title, items in (("shape mismatch", found.shapes), ("missing", found.missing), ("unexpected", found.unexpected)):
        if not items:
            continue
        if groups is not None and title != "shape mismatch":
            problems.append(f"{len(items)} {title} keys: {group_keys(items, limit=groups)}")
        else:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            problems.append(f"{len(items)} {title} keys, first: {'; '.join(items[:limit])}{more}")
    return problems


def check_fits(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str, hint: str,
               allow_missing_prefixes: tuple[str, ...] = (), groups: int | None = None) -> None:
    """Raise CheckpointMismatchError ('{what}: problems. {hint}') unless ``state_dict`` holds exactly the
    model's keys and shapes (keys under ``allow_missing_prefixes`` may be missing; ``groups``: see
    ``describe_mismatch``)."""
    problems = describe_mismatch(model, state_dict, allow_missing_prefixes, groups=groups)
    if problems:
        raise CheckpointMismatchError(f"{what}: " + " | ".join(problems) + f". {hint}")


def require_loaded(left_at_init: list[str], source: str | os.PathLike, allow_partial: bool,
                   expected_note: str = "") -> None:
    """Raise PartialLoadError naming the parameters a load left at their initial values (``left_at_init``,
    already without those that are expected to stay there, which ``expected_note`` may describe),
    unless the caller allows it (``allow_partial``)."""
    if not left_at_init or allow_partial:
        return
    raise PartialLoadError(
        f"{source} leaves {len(left_at_init)} backbone parameters at their initial values, first: "
        f"{', '.join(left_at_init[:4])}; by name: {group_keys(left_at_init, limit=8)}. Is it a checkpoint of "
        f"another model or size, or in a layout this tool does not map?{expected_note}",
        source, left_at_init,
    )
