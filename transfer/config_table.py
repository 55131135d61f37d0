"""``--backbone NAME`` -> the config file of its paper row (configs/det/*.py, configs/seg/*.py), as
named in the one encoder table (``pretrain.encoders``)."""
from __future__ import annotations

from pathlib import Path

from pretrain.encoders import paper_rows

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"


class ConfigTable:
    """The ``task`` ("det" or "seg") rows of ``pretrain.encoders.ENCODERS``."""

    def __init__(self, task: str):
        self.folder = CONFIG_ROOT / task
        self.files = paper_rows(task)

    def path(self, name: str) -> str:
        if name not in self.files:
            raise KeyError(f"unknown backbone {name!r}; choose one of {', '.join(sorted(self.files))}")
        path = self.folder / self.files[name]
        if not path.is_file():
            raise FileNotFoundError(f"config {path} for backbone {name!r} is missing from this checkout")
        return str(path)
