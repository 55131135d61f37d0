"""``--backbone NAME`` -> the config file of its paper row (configs/det/*.py, configs/seg/*.py)."""
from __future__ import annotations

from pathlib import Path

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"


class ConfigTable:
    def __init__(self, folder: str, files: dict[str, str]):
        self.folder = CONFIG_ROOT / folder
        self.files = dict(files)

    def path(self, name: str) -> str:
        if name not in self.files:
            raise KeyError(f"unknown backbone {name!r}; choose one of {', '.join(sorted(self.files))}")
        path = self.folder / self.files[name]
        if not path.is_file():
            raise FileNotFoundError(f"config {path} for backbone {name!r} is missing from this checkout")
        return str(path)
