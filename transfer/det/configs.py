"""Which LazyConfig file a ``--backbone`` name selects (one file per paper row under configs/det/)."""
from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "det"

BACKBONE_CONFIGS = {
    "mae_vit_base": "mask_rcnn_vitdet_mae_b_100ep.py",
    "mae_vit_large": "mask_rcnn_vitdet_mae_l_100ep.py",
    "sim_vit_base": "mask_rcnn_vitdet_sim_b_100ep.py",
    "convmae_base": "mask_rcnn_convmae_b_fpn_25ep.py",
    "convmae_base_100ep": "mask_rcnn_convmae_b_fpn_100ep.py",
    "vit_tiny": "toy_vitdet_tiny.py",
    "convmae_tiny": "toy_convmae_tiny.py",
}


def config_for_backbone(name: str) -> str:
    if name not in BACKBONE_CONFIGS:
        raise KeyError(f"unknown backbone {name!r}; choose one of {', '.join(sorted(BACKBONE_CONFIGS))}")
    path = CONFIG_DIR / BACKBONE_CONFIGS[name]
    if not path.is_file():
        raise FileNotFoundError(f"config {path} for backbone {name!r} is missing from this checkout")
    return str(path)
