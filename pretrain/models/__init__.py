"""Encoders and their pretraining models; ``build_model(name)`` builds any registered one."""
from .registry import build_model, list_models, register_model
from . import convmae  # noqa: F401
from . import mae, sim  # noqa: F401

__all__ = ["build_model", "list_models", "register_model"]
