"""Which LazyConfig file a ``--backbone`` name selects (one file per paper row under configs/det/)."""
from transfer.config_table import ConfigTable

DET_CONFIGS = ConfigTable("det", {
    "mae_vit_base": "mask_rcnn_vitdet_mae_b_100ep.py",
    "mae_vit_large": "mask_rcnn_vitdet_mae_l_100ep.py",
    "sim_vit_base": "mask_rcnn_vitdet_sim_b_100ep.py",
    "convmae_base": "mask_rcnn_convmae_b_fpn_25ep.py",
    "convmae_base_100ep": "mask_rcnn_convmae_b_fpn_100ep.py",
    "vit_tiny": "toy_vitdet_tiny.py",
    "convmae_tiny": "toy_convmae_tiny.py",
})
BACKBONE_CONFIGS = DET_CONFIGS.files
config_for_backbone = DET_CONFIGS.path
