"""The one table that names every encoder: its pretraining model, its transfer backbone, its paper
rows (detection and segmentation config files) and its officially released checkpoint.

Tools, configs and registries read this table; nothing else spells these facts. Pure Python, so
every layer (pretrain, transfer, tools) can import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field


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
    """One encoder under its one name (``name``): the ``--backbone`` name of the tools, the name
    ``pretrain.models.build_model`` and ``transfer.backbones.build_backbone`` take, and the ``name=`` of
    the detectron2 / mmseg backbone classes.

    ``pretrain_factory``: the function in ``pretrain.models`` that builds its pretraining model (named
    as in the official repository, an implementation detail: callers use ``name``).
    ``backbone``: "vit" or "convmae" (``transfer.backbones.ViTBackbone`` / ``ConvMAEBackbone``), None
    when no transfer backbone exists; ``backbone_settings``: its dimensions and detection settings (the
    official ViTDet / ConvViTDet ones: window, global blocks, drop path), the only place they are written.
    ``weights``: the ``OFFICIAL_WEIGHTS`` name its paper rows start from (None: random init).
    ``det_rows`` / ``seg_rows``: (row name, config file under configs/det or configs/seg); the first det
    row is the encoder's own name."""

    name: str
    pretrain_factory: str
    backbone: str | None = None
    backbone_settings: dict = field(default_factory=dict)
    weights: str | None = None
    det_rows: tuple[tuple[str, str], ...] = ()
    seg_rows: tuple[tuple[str, str], ...] = ()


# ViTDet (detectron2 projects/ViTDet configs/common/models/mask_rcnn_vitdet.py, COCO/mask_rcnn_vitdet_l_100ep.py)
_VIT_B = dict(embed_dim=768, depth=12, num_heads=12, window_size=14, global_blocks=(2, 5, 8, 11), drop_path_rate=0.1)
_VIT_L = dict(embed_dim=1024, depth=24, num_heads=16, window_size=14, global_blocks=(5, 11, 17, 23),
              drop_path_rate=0.4)
# CPU size: the dims of the tiny MAE (96-d, 2 blocks, 3 heads, 64-px pretraining)
_VIT_TINY = dict(img_size=128, embed_dim=96, depth=2, num_heads=3, window_size=4, global_blocks=(1,),
                 pretrain_img_size=64, drop_path_rate=0.0)
# the released ConvViTDet (Alpha-VL/ConvMAE DET/configs/convmae/convmae_base_mask_rcnn_FPN_100ep.py)
_CONVMAE_B = dict(embed_dims=(256, 384, 768), depths=(2, 2, 11), num_heads=12, window_size=16,
                  global_blocks=(0, 3, 6, 10), drop_path_rate=0.1)

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
    Encoder("mae_vit_base", "mae_vit_base_patch16", "vit", _VIT_B, "mae_pretrain_vit_base",
            det_rows=(("mae_vit_base", "mask_rcnn_vitdet_mae_b_100ep.py"),),
            seg_rows=(("mae_vit_base", "upernet_mae_vit_base_512_160k_ade20k.py"),)),
    Encoder("mae_vit_large", "mae_vit_large_patch16", "vit", _VIT_L, "mae_pretrain_vit_large",
            det_rows=(("mae_vit_large", "mask_rcnn_vitdet_mae_l_100ep.py"),)),
    Encoder("mae_vit_huge", "mae_vit_huge_patch14", weights="mae_pretrain_vit_huge"),
    Encoder("sim_vit_base", "sim_vit_base_patch16", "vit", _VIT_B, "sim_vit_base",
            det_rows=(("sim_vit_base", "mask_rcnn_vitdet_sim_b_100ep.py"),),
            seg_rows=(("sim_vit_base", "upernet_sim_vit_base_512_160k_ade20k.py"),)),
    Encoder("sim_vit_large", "sim_vit_large_patch16", "vit", _VIT_L),
    Encoder("convmae_small", "convmae_small", "convmae",  # ConvMAE-S dims with the base detection settings
            {**_CONVMAE_B, "embed_dims": (128, 256, 384), "num_heads": 6}),
    Encoder("convmae_base", "convmae_base", "convmae", _CONVMAE_B, "convmae_base",
            det_rows=(("convmae_base", "mask_rcnn_convmae_b_fpn_25ep.py"),
                      ("convmae_base_100ep", "mask_rcnn_convmae_b_fpn_100ep.py")),
            seg_rows=(("convmae_base", "upernet_convmae_base_512_160k_ade20k.py"),)),
    Encoder("convmae_large", "convmae_large"),
    Encoder("convmae_huge", "convmae_huge"),
    # CPU toy sizes: random init unless --weights is given
    Encoder("mae_vit_tiny", "mae_vit_tiny_patch16", "vit", _VIT_TINY,
            det_rows=(("mae_vit_tiny", "toy_vitdet_tiny.py"),),
            seg_rows=(("mae_vit_tiny", "toy_upernet_vit_tiny.py"),)),
    Encoder("sim_vit_tiny", "sim_vit_tiny_patch16", "vit", {**_VIT_TINY, "embed_dim": 64, "num_heads": 2}),
    Encoder("convmae_tiny", "convmae_tiny", "convmae",
            dict(img_size=128, embed_dims=(32, 48, 64), depths=(1, 1, 2), num_heads=4, mlp_ratios=(2, 2, 2),
                 window_size=4, global_blocks=(0,), drop_path_rate=0.0),
            det_rows=(("convmae_tiny", "toy_convmae_tiny.py"),),
            seg_rows=(("convmae_tiny", "toy_upernet_convmae_tiny.py"),)),
)}

# Names used before the table named each encoder once: refused with the new name.
RETIRED_NAMES: dict[str, str] = {
    **{e.pretrain_factory: e.name for e in ENCODERS.values() if e.pretrain_factory != e.name},
    "vit_base_patch16": "mae_vit_base (or sim_vit_base)",
    "vit_large_patch16": "mae_vit_large (or sim_vit_large)",
    "vit_tiny_patch16": "mae_vit_tiny (or sim_vit_tiny)",
    "vit_tiny": "mae_vit_tiny",
}


def encoder(name: str, what: str = "encoder") -> Encoder:
    """The table entry ``name``; a retired name is refused with its new one, an unknown one with the list."""
    if name in ENCODERS:
        return ENCODERS[name]
    if name in RETIRED_NAMES:
        raise KeyError(f"{what} {name!r} was renamed: use {RETIRED_NAMES[name]} (one name per encoder, "
                       "pretrain/encoders.py)")
    raise KeyError(f"unknown {what} {name!r}; known: {', '.join(ENCODERS)}")


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
