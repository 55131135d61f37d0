"""One registry of model names: ``build_model(name, **overrides)``."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a factory under its function name (the official repositories' model names)."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model name {fn.__name__!r} registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def build_model(name: str, **overrides) -> nn.Module:
    """Build a registered model; ``overrides`` replace the factory's default constructor arguments."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODELS[name](**overrides)
