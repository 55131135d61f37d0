"""What a segmentation run starts from, and which config overrides it accepts.

- ``check_cfg_options``: mmengine's ``Config.merge_from_dict`` adds unknown keys silently, so a
  misspelled ``--cfg-options`` key (``train_cfg.max_itr=20``, ``modell.backbone.depth=2``) would do
  nothing. Every key's parent must exist, and a new last key is accepted only where it is a
  constructor argument: its parent has a ``type`` whose class (looked up in mmseg's registries) takes
  that argument, or takes ``**kwargs`` (then the class refuses a wrong name when it is built).
- ``apply_weights``: ``--weights NAME|PATH`` / ``--from-scratch`` / the config's own checkpoint name
  (``model.backbone.pretrained``, an official name of ``pretrain.encoders.OFFICIAL_WEIGHTS``, resolved
  by ``pretrain.weights.resolve_weights`` when the backbone initialises) -> the config, and one line
  for the log saying what the run starts from.
"""
from __future__ import annotations

import inspect
import os
from typing import Any, Callable, Mapping

from mmengine.config import Config
from torch.utils.data import DataLoader
from mmseg import registry
from mmseg.utils import register_all_modules

from pretrain.weights import choose_weights, names_a_download, resolve_weights


class UnknownOptionError(ValueError):
    """An override key that is not in the config (and not a constructor argument)."""


_DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")  # built as torch DataLoader(**cfg)
_REGISTRIES = ("MODELS", "LOOPS", "HOOKS", "DATASETS", "TRANSFORMS", "DATA_SAMPLERS", "OPTIM_WRAPPERS",
               "OPTIMIZERS", "OPTIM_WRAPPER_CONSTRUCTORS", "PARAM_SCHEDULERS", "METRICS", "EVALUATOR",
               "VISUALIZERS", "VISBACKENDS", "LOG_PROCESSORS")


def _init_args(cls: type) -> set[str] | None:
    """Keyword arguments of ``cls``, following ``**kwargs`` up the class hierarchy (mmseg's heads pass
    theirs to ``BaseDecodeHead``); None when they stay open. Our wrappers (``transfer.*``) forward
    ``**overrides`` to a ``transfer.backbones`` class that refuses unknown names when built."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("transfer."):
            return None
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = list(inspect.signature(init).parameters.values())
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None


def _constructor_args(type_name: Any) -> set[str] | None:
    """The keyword arguments the class registered as ``type_name`` takes (see ``_init_args``); None
    when they are open or the class cannot be found (its constructor then checks the names)."""
    if not isinstance(type_name, str):
        return None
    register_all_modules(init_default_scope=False)
    for name in _REGISTRIES:
        cls = getattr(registry, name).get(type_name)
        if inspect.isclass(cls):
            return _init_args(cls)
    return None


def _is_dict(node: Any) -> bool:
    return isinstance(node, (Mapping, Config))  # mmengine's Config is not a Mapping, its ConfigDicts are


def _known(node: Any) -> list[str]:
    return sorted(map(str, node.keys())) if _is_dict(node) else [f"0..{len(node) - 1}"]


def _refuse_new_key(key: str, node: Any, part: str, path: str, last: bool) -> None:
    """``part`` is not in ``node`` (at ``path``): accept it as a new constructor argument, or raise."""
    if last and _is_dict(node) and ("type" in node or path in _DATALOADERS):
        args = _init_args(DataLoader) if path in _DATALOADERS else _constructor_args(node["type"])
        if args is None or part in args:
            return  # a new constructor argument of node['type']
        raise UnknownOptionError(
            f"--cfg-options {key}: {node.get('type', 'DataLoader')} (at {path}) takes no argument {part!r}; "
            f"it takes: {', '.join(sorted(args))}"
        )
    known = ", ".join(_known(node)) if _is_dict(node) or isinstance(node, (list, tuple)) else "(a value, not a dict)"
    raise UnknownOptionError(
        f"--cfg-options {key}: {part!r} is not a key of {path}; known keys there: {known}. "
        "Check the spelling (mmengine would add the key silently and change nothing)."
    )


def check_cfg_options(cfg: Config, options: Mapping[str, Any]) -> None:
    """Raise UnknownOptionError naming the known keys for an override key that would be silently added."""
    for key in options:
        parts = key.split(".")
        node: Any = cfg
        for depth, part in enumerate(parts):
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif _is_dict(node) and part in node:
                node = node[part]
            else:
                path = ".".join(parts[:depth]) or "the config"
                _refuse_new_key(key, node, part, path, last=depth == len(parts) - 1)
                break


def _configured_checkpoint(backbone: Mapping) -> str | None:
    init_cfg = backbone.get("init_cfg")
    if isinstance(init_cfg, Mapping) and init_cfg.get("type") == "Pretrained":
        return init_cfg.get("checkpoint")
    return backbone.get("pretrained")


def apply_weights(
    cfg: Config, is_segmentor: Callable[[str], bool], weights: str = "", from_scratch: bool = False,
    allow_partial: bool = False, eval_only: bool = False,
) -> str:
    """Set the run's initial weights in ``cfg`` (see the module doc); returns the log line.

    A segmentor checkpoint (``is_segmentor(path)``) becomes ``load_from`` (loaded whole and strictly);
    a pretraining checkpoint the backbone's ``init_cfg``. Raises ValueError for contradicting flags."""
    backbone = cfg.model.backbone
    configured = _configured_checkpoint(backbone)
    choice = choose_weights(weights, from_scratch, configured)  # --weights and --from-scratch: ValueError
    if configured:
        backbone.pop("init_cfg", None)  # set again below when the backbone is to load a checkpoint
    backbone.pretrained = cfg.model.pretrained = None
    if choice.source == "--weights":
        path = resolve_weights(weights)
        if is_segmentor(path):
            cfg.load_from = path
            return f"WEIGHTS: the whole segmentor from {weights} ({path}), loaded strictly"
        if eval_only:
            raise ValueError(
                f"--eval-only needs a trained segmentor checkpoint; {weights} is a pretraining checkpoint of the "
                "backbone only (its heads would be random)"
            )
        configured = path
    elif choice.source == "--from-scratch":
        return "WEIGHTS: none, the backbone starts from random initialisation (--from-scratch)"
    elif eval_only:
        return "WEIGHTS: from the segmentor checkpoint to evaluate"
    elif choice.source == "none":
        return "WEIGHTS: none, the backbone starts from random initialisation (this config names no checkpoint)"
    backbone.init_cfg = dict(type="Pretrained", checkpoint=configured, strict=not allow_partial)
    where = "downloaded once" if names_a_download(configured) else os.path.abspath(configured)
    partial = " (--allow-partial-weights: blocks it lacks stay at init)" if allow_partial else ""
    return f"WEIGHTS: backbone initialised from {configured} ({where}){partial}"
