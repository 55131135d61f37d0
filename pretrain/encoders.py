"""The one table that names every encoder: its pretraining model, its transfer backbone, its paper
rows (detection and segmentation config files) and its officially released checkpoint.

Tools, configs and registries read this table; nothing else spells these facts. Pure Python, so
every layer (pretrain, transfer, tools) can import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OfficialWeights:
    """A released checkpoint under the name ``--weights`` takes (``name``).

    ``url``: the direct link, None where the authors publish none (a Google Drive page): then ``source``
    says where to get it. ``md5_prefix`` / ``sha256``: the checksum where one is published (facebookresearch/mae
    publishes the first 6 hex digits of each file's md5; detectron2's model zoo puts the md5 prefix into the
    file name), None where none is (a download is then logged with its md5 and sha256 to compare by hand).
    ``kind``: 'pretrain' (an encoder or pretraining model: every tool's backbone), 'finetuned' (an ImageNet
    classifier in the official ``models_vit`` names: tools/train_cls.py) or 'detector' (a whole detectron2
    Mask R-CNN: tools/train_det.py). docs/WEIGHTS.md lists them all."""

    name: str
    filename: str
    url: str | None
    source: str
    md5_prefix: str | None = None
    sha256: str | None = None
    kind: str = "pretrain"


@dataclass(frozen=True)
class Encoder:
    """One encoder under its one name (``name``): the ``--backbone`` name of the tools, the name
    ``pretrain.models.build_model`` and ``transfer.backbones.build_backbone`` take, and the ``name=`` of
    the detectron2 / mmseg backbone classes.

    ``pretrain_factory``: the function in ``pretrain.models`` that builds its pretraining model (named
    as in the official repository, an implementation detail: callers use ``name``).
    ``family``: "mae", "convmae" or "sim", the pretraining method (``pretrain.methods``); read it here,
    never from a name prefix.
    ``backbone``: "vit" or "convmae" (``transfer.backbones.ViTBackbone`` / ``ConvMAEBackbone``), None
    when no transfer backbone exists; ``backbone_settings``: its dimensions and detection settings (the
    official ViTDet / ConvViTDet ones: window, global blocks, drop path), the only place they are written.
    ``weights``: the ``OFFICIAL_WEIGHTS`` name its paper rows start from (None: random init).
    ``det_rows`` / ``seg_rows``: (row name, config file under configs/det or configs/seg); the first det
    row is the encoder's own name.
    ``cls_rows``: (row name ``<encoder>_<protocol>``, config file under configs/cls), the ImageNet
    classification rows of ``tools/train_cls.py --backbone NAME --protocol P``."""

    name: str
    pretrain_factory: str
    family: str
    backbone: str | None = None
    backbone_settings: dict = field(default_factory=dict)
    weights: str | None = None
    det_rows: tuple[tuple[str, str], ...] = ()
    seg_rows: tuple[tuple[str, str], ...] = ()
    cls_rows: tuple[tuple[str, str], ...] = ()


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

_MAE = "facebookresearch/mae README.md (pre-trained checkpoints, md5 row)"
_MAE_FT = "facebookresearch/mae FINETUNE.md (fine-tuned checkpoints, md5 row)"
_SIM = "OpenGVLab/Siamese-Image-Modeling docs/checkpoints.md (release v1.0); no checksum published"
_SIM_URL = "https://github.com/OpenGVLab/Siamese-Image-Modeling/releases/download/v1.0/"
_VITDET = ("facebookresearch/detectron2 projects/ViTDet/README.md (COCO Mask R-CNN); md5 prefix in the file name "
           "(detectron2 MODEL_ZOO.md's convention)")
# detectron2's Detectron2Handler maps detectron2://X to this prefix (detectron2/utils/file_io.py)
DETECTRON2_URL_PREFIX = "https://dl.fbaipublicfiles.com/detectron2/"


def _mae(size: str, md5_prefix: str, finetuned: bool = False) -> OfficialWeights:
    name = f"mae_{'finetuned' if finetuned else 'pretrain'}_vit_{size}"
    folder, source = ("finetune", _MAE_FT) if finetuned else ("pretrain", _MAE)
    return OfficialWeights(name, f"{name}.pth", f"https://dl.fbaipublicfiles.com/mae/{folder}/{name}.pth", source,
                           md5_prefix, kind="finetuned" if finetuned else "pretrain")


def _detectron2_mae(file: str, config: str) -> OfficialWeights:
    """detectron2's copy of an MAE encoder as its ViTDet configs name it (``train.init_checkpoint``); no
    checksum is published for these copies."""
    path = f"ImageNetPretrained/MAE/{file}"
    return OfficialWeights(f"detectron2://{path}", file, DETECTRON2_URL_PREFIX + path,
                           f"facebookresearch/detectron2 projects/ViTDet/configs/COCO/{config} (train.init_checkpoint)")


OFFICIAL_WEIGHTS: dict[str, OfficialWeights] = {w.name: w for w in (
    _mae("base", "8cad7c"),
    _mae("large", "b8b06e"),
    _mae("huge", "9bdbb0"),
    _mae("base", "1b25e9", finetuned=True),
    _mae("large", "51f550", finetuned=True),
    _mae("huge", "2541f2", finetuned=True),
    OfficialWeights("convmae_base", "convmae_base.pth", None,
                    "Alpha-VL/ConvMAE README, 'Pretrain on ImageNet-1K' table (ConvMAE-Base pretrained "
                    "checkpoints, a Google Drive link): download it in a browser"),
    OfficialWeights("sim_vit_base", "sim_base_1600ep_pretrain.pth", _SIM_URL + "sim_base_1600ep_pretrain.pth", _SIM),
    OfficialWeights("sim_finetuned_vit_base", "sim_base_1600ep_finetune.pth",
                    _SIM_URL + "sim_base_1600ep_finetune.pth", _SIM, kind="finetuned"),
    _detectron2_mae("mae_pretrain_vit_base.pth", "mask_rcnn_vitdet_b_100ep.py"),
    _detectron2_mae("mae_pretrain_vit_large.pth", "mask_rcnn_vitdet_l_100ep.py"),
    _detectron2_mae("mae_pretrain_vit_huge_p14to16.pth", "mask_rcnn_vitdet_h_75ep.py"),
    OfficialWeights("vitdet_mae_b_100ep", "model_final_61ccd1.pkl",
                    "https://dl.fbaipublicfiles.com/detectron2/ViTDet/COCO/mask_rcnn_vitdet_b/f325346929/"
                    "model_final_61ccd1.pkl", _VITDET, "61ccd1", kind="detector"),
    OfficialWeights("vitdet_mae_l_100ep", "model_final_6146ed.pkl",
                    "https://dl.fbaipublicfiles.com/detectron2/ViTDet/COCO/mask_rcnn_vitdet_l/f325599698/"
                    "model_final_6146ed.pkl", _VITDET, "6146ed", kind="detector"),
)}


def _cls_rows(name: str, *protocols: str) -> tuple[tuple[str, str], ...]:
    """The classification rows of ``name``: row and config file ``<name>_<protocol>(.py)``."""
    return tuple((f"{name}_{p}", f"{name}_{p}.py") for p in protocols)


ENCODERS: dict[str, Encoder] = {e.name: e for e in (
    Encoder("mae_vit_base", "mae_vit_base_patch16", "mae", "vit", _VIT_B, "mae_pretrain_vit_base",
            det_rows=(("mae_vit_base", "mask_rcnn_vitdet_mae_b_100ep.py"),),
            seg_rows=(("mae_vit_base", "upernet_mae_vit_base_512_160k_ade20k.py"),),
            cls_rows=_cls_rows("mae_vit_base", "finetune", "linprobe")),
    Encoder("mae_vit_large", "mae_vit_large_patch16", "mae", "vit", _VIT_L, "mae_pretrain_vit_large",
            det_rows=(("mae_vit_large", "mask_rcnn_vitdet_mae_l_100ep.py"),),
            cls_rows=_cls_rows("mae_vit_large", "finetune", "linprobe")),
    Encoder("mae_vit_huge", "mae_vit_huge_patch14", "mae", weights="mae_pretrain_vit_huge",
            cls_rows=_cls_rows("mae_vit_huge", "finetune", "linprobe")),
    Encoder("sim_vit_base", "sim_vit_base_patch16", "sim", "vit", _VIT_B, "sim_vit_base",
            det_rows=(("sim_vit_base", "mask_rcnn_vitdet_sim_b_100ep.py"),),
            seg_rows=(("sim_vit_base", "upernet_sim_vit_base_512_160k_ade20k.py"),),
            cls_rows=_cls_rows("sim_vit_base", "finetune", "linprobe", "fewshot")),
    Encoder("sim_vit_large", "sim_vit_large_patch16", "sim", "vit", _VIT_L),
    Encoder("convmae_small", "convmae_small", "convmae", "convmae",  # ConvMAE-S dims with the base detection settings
            {**_CONVMAE_B, "embed_dims": (128, 256, 384), "num_heads": 6}),
    Encoder("convmae_base", "convmae_base", "convmae", "convmae", _CONVMAE_B, "convmae_base",
            det_rows=(("convmae_base", "mask_rcnn_convmae_b_fpn_25ep.py"),
                      ("convmae_base_100ep", "mask_rcnn_convmae_b_fpn_100ep.py")),
            seg_rows=(("convmae_base", "upernet_convmae_base_512_160k_ade20k.py"),),
            cls_rows=_cls_rows("convmae_base", "finetune", "linprobe")),
    Encoder("convmae_large", "convmae_large", "convmae"),
    Encoder("convmae_huge", "convmae_huge", "convmae"),
    # CPU toy sizes: random init unless --weights is given
    Encoder("mae_vit_tiny", "mae_vit_tiny_patch16", "mae", "vit", _VIT_TINY,
            det_rows=(("mae_vit_tiny", "toy_vitdet_tiny.py"),),
            seg_rows=(("mae_vit_tiny", "toy_upernet_vit_tiny.py"),),
            cls_rows=tuple((f"mae_vit_tiny_{p}", f"toy_cls_{p}.py") for p in ("finetune", "linprobe", "knn", "fewshot"))),
    Encoder("sim_vit_tiny", "sim_vit_tiny_patch16", "sim", "vit", {**_VIT_TINY, "embed_dim": 64, "num_heads": 2}),
    Encoder("convmae_tiny", "convmae_tiny", "convmae", "convmae",
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
    """``{row name: config file}`` of every ``task`` ("det", "seg" or "cls") row in the table."""
    if task not in ("det", "seg", "cls"):
        raise ValueError(f"task must be 'det', 'seg' or 'cls', got {task!r}")
    return {row: config for e in ENCODERS.values() for row, config in getattr(e, f"{task}_rows")}

