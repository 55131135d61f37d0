"""``build_model(name, **overrides)``: the pretraining model of an encoder named in
``pretrain.encoders`` (its one name), built by the factory registered under the official function name."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from pretrain.encoders import ENCODERS, encoder

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


MODELS = Registry("model")  # keyed by the official factory names; callers use the encoder names
register_model = MODELS.register


def list_models() -> list[str]:
    """The encoders (``pretrain.encoders.ENCODERS``) whose pretraining model can be built."""
    return sorted(name for name, e in ENCODERS.items() if e.pretrain_factory in MODELS.names())


def build_model(name: str, **overrides) -> nn.Module:
    """The pretraining model of encoder ``name`` (``pretrain.encoders``); ``overrides`` replace the
    factory's constructor arguments."""
    return MODELS.build(encoder(name, "model").pretrain_factory, **overrides)
