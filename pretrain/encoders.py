"""The one table that names every encoder: its pretraining model, its transfer backbone, its paper
rows (detection and segmentation config files) and its officially released checkpoint.

Tools, configs and registries read this table; nothing else spells these facts. Pure Python, so
every layer (pretrain, transfer, tools) can import it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OfficialWeights:
    """A released checkpoint. ``url`` is None where the authors publish no direct link (e.g. a
    Google Drive page): then ``source`` says where to get it. ``sha256`` is None where no checksum is
    published and none could be measured here (no internet on the machines this was written on)."""

    name: str
    filename: str
    url: str | None
    source: str
    sha256: str | None = None


@dataclass(frozen=True)
class Encoder:
    """``name`` is the ``--backbone`` name of the tools; ``pretrain_model`` the
    ``pretrain.models.build_model`` name; ``backbone`` the ``transfer.backbones.build_backbone`` name;
    ``weights`` the ``OFFICIAL_WEIGHTS`` name its paper rows start from (None: random init, toy rows).
    ``det_rows`` / ``seg_rows``: (row name, config file under configs/det or configs/seg); the first
    det row is the encoder's own name."""

    name: str
    pretrain_model: str
    backbone: str
    weights: str | None
    det_rows: tuple[tuple[str, str], ...] = ()
    seg_rows: tuple[tuple[str, str], ...] = ()


_MAE = "facebookresearch/mae README (pretrained checkpoints)"
_VITDET = "facebookresearch/detectron2 projects/ViTDet/README.md (COCO Mask R-CNN)"

OFFICIAL_WEIGHTS: dict[str, OfficialWeights] = {w.name: w for w in (
    OfficialWeights("mae_pretrain_vit_base", "mae_pretrain_vit_base.pth",
                    "https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth", _MAE),
    OfficialWeights("mae_pretrain_vit_large", "mae_pretrain_vit_large.pth",
                    "https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_large.pth", _MAE),
    OfficialWeights("mae_pretrain_vit_huge", "mae_pretrain_vit_huge.pth",
                    "https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_huge.pth", _MAE),
    OfficialWeights("convmae_base", "convmae_base.pth", None,
                    "Alpha-VL/ConvMAE README, 'Pretrain on ImageNet-1K' table (ConvMAE-Base pretrained "
                    "checkpoints, a Google Drive link): download it in a browser"),
    OfficialWeights("sim_vit_base", "sim_base_1600ep_pretrain.pth", None,
                    "OpenGVLab/Siamese-Image-Modeling README, pretrained models table (SIM ViT-B 1600 ep)"),
    OfficialWeights("vitdet_mae_b_100ep", "model_final_61ccd1.pkl",
                    "https://dl.fbaipublicfiles.com/detectron2/ViTDet/COCO/mask_rcnn_vitdet_b/f325346929/"
                    "model_final_61ccd1.pkl", _VITDET),
    OfficialWeights("vitdet_mae_l_100ep", "model_final_6146ed.pkl",
                    "https://dl.fbaipublicfiles.com/detectron2/ViTDet/COCO/mask_rcnn_vitdet_l/f325599698/"
                    "model_final_6146ed.pkl", _VITDET),
)}

ENCODERS: dict[str, Encoder] = {e.name: e for e in (
    Encoder("mae_vit_base", "mae_vit_base_patch16", "vit_base_patch16", "mae_pretrain_vit_base",
            det_rows=(("mae_vit_base", "mask_rcnn_vitdet_mae_b_100ep.py"),),
            seg_rows=(("mae_vit_base", "upernet_mae_vit_base_512_160k_ade20k.py"),)),
    Encoder("mae_vit_large", "mae_vit_large_patch16", "vit_large_patch16", "mae_pretrain_vit_large",
            det_rows=(("mae_vit_large", "mask_rcnn_vitdet_mae_l_100ep.py"),)),
    Encoder("sim_vit_base", "sim_vit_base_patch16", "vit_base_patch16", "sim_vit_base",
            det_rows=(("sim_vit_base", "mask_rcnn_vitdet_sim_b_100ep.py"),),
            seg_rows=(("sim_vit_base", "upernet_sim_vit_base_512_160k_ade20k.py"),)),
    Encoder("convmae_base", "convmae_base", "convmae_base", "convmae_base",
            det_rows=(("convmae_base", "mask_rcnn_convmae_b_fpn_25ep.py"),
                      ("convmae_base_100ep", "mask_rcnn_convmae_b_fpn_100ep.py")),
            seg_rows=(("convmae_base", "upernet_convmae_base_512_160k_ade20k.py"),)),
    # CPU toy rows: tiny encoders, random init unless --weights is given
    Encoder("vit_tiny", "mae_vit_tiny_patch16", "vit_tiny_patch16", None,
            det_rows=(("vit_tiny", "toy_vitdet_tiny.py"),),
            seg_rows=(("vit_tiny", "toy_upernet_vit_tiny.py"),)),
    Encoder("convmae_tiny", "convmae_tiny", "convmae_tiny", None,
            det_rows=(("convmae_tiny", "toy_convmae_tiny.py"),),
            seg_rows=(("convmae_tiny", "toy_upernet_convmae_tiny.py"),)),
)}


def paper_rows(task: str) -> dict[str, str]:
    """``{row name: config file}`` of every ``task`` ("det" or "seg") row in the table."""
    if task not in ("det", "seg"):
        raise ValueError(f"task must be 'det' or 'seg', got {task!r}")
    return {row: config for e in ENCODERS.values() for row, config in getattr(e, f"{task}_rows")}


def encoder_of_row(row: str) -> Encoder:
    """The encoder a det/seg row name belongs to."""
    for e in ENCODERS.values():
        if any(row == name for name, _ in e.det_rows + e.seg_rows):
            return e
    raise KeyError(f"unknown row {row!r}; known: {', '.join(sorted(set(paper_rows('det')) | set(paper_rows('seg'))))}")
