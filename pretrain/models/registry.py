"""Name registries: ``build_model(name, **overrides)`` for the pretraining models, and the generic
``Registry`` that ``transfer.backbones`` uses for its backbones."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

Factory = Callable[..., nn.Module]


class Registry:
    """Factories registered under their function names (the official repositories' model names)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Factory] = {}

    def register(self, fn: Factory) -> Factory:
        if fn.__name__ in self._factories:
            raise ValueError(f"{self.kind} name {fn.__name__!r} registered twice")
        self._factories[fn.__name__] = fn
        return fn

    def names(self) -> list[str]:
        return sorted(self._factories)

    def build(self, name: str, **overrides) -> nn.Module:
        """Build ``name``; ``overrides`` replace the factory's default constructor arguments."""
        if name not in self._factories:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._factories[name](**overrides)


MODELS = Registry("model")
register_model = MODELS.register
list_models = MODELS.names
build_model = MODELS.build
