"""The detection paper rows' recipe table.

For every det paper row: each hyper-parameter that decides the reported number, its official value
and the official file it comes from, asserted against the row's own config as ``--backbone`` loads
it. What the config leaves to code (rel-pos, frozen position table, the weight decay and lr each
parameter actually gets) is read from the model built from the config on the meta device, and from
the optimizer parameter groups the config builds for it. Official values are written as the
official files write them (augmentations and schedules as LazyCalls, instantiated the same way as
ours), so a change on either side that alters behaviour fails here.

Where a row differs from the official recipe on purpose, its fact carries ``ours`` (our value) and
``why``; ``paper_switch`` then gives the overrides that restore the official value, and the test
applies them and requires the official value. The one such difference in detection is the number of
checkpoints kept (disk space). Precision matches: fp16 AMP (detectron2's AMPTrainer) as the official
runs; nothing in detection uses bf16.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import detectron2.data.transforms as T
import pytest
import torch
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig, instantiate
from detectron2.layers.batch_norm import NaiveSyncBatchNorm
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import CosineParamScheduler, MultiStepParamScheduler
from omegaconf import OmegaConf

from pretrain.encoders import ENCODERS, OFFICIAL_WEIGHTS
from transfer.det.backbones import MIMBackbone
from transfer.det.configs import config_for_backbone
from transfer.det.lsj import PaddedInputRCNN

D2 = "facebookresearch/detectron2 "
VITDET_B = D2 + "projects/ViTDet/configs/COCO/mask_rcnn_vitdet_b_100ep.py"
VITDET_L = D2 + "projects/ViTDet/configs/COCO/mask_rcnn_vitdet_l_100ep.py"
LSJ = D2 + "projects/ViTDet/configs/common/coco_loader_lsj.py"
VITDET_MODEL = D2 + "configs/common/models/mask_rcnn_vitdet.py"
OPTIM = D2 + "configs/common/optim.py"
COCO_DATA = D2 + "configs/common/data/coco.py"
SIM = "OpenGVLab/Siamese-Image-Modeling README.md ('We use ViTDet for detection tasks': the ViT-B recipe)"
CONVMAE = "Alpha-VL/ConvMAE DET/configs/convmae/convmae_base_mask_rcnn_FPN_100ep.py"
CONVMAE_25 = "Alpha-VL/ConvMAE DET/configs/convmae/convmae_base_mask_rcnn_FPN_25ep.py"
IMAGENET_RGB = ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))  # detectron2 configs/common/data/constants.py


@dataclass(frozen=True)
class Fact:
    what: str
    official: Any
    source: str
    read: Callable[["Row"], Any]
    ours: Any = None  # set only where we differ on purpose
    why: str = ""
    paper_switch: tuple[str, ...] = ()  # overrides that give the official value


# ---- reading a row ---------------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    cfg: Any
    _built: dict = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return plain(OmegaConf.select(self.cfg, key, throw_on_missing=True))

    @property
    def model(self) -> torch.nn.Module:
        if "model" not in self._built:
            with torch.device("meta"):
                self._built["model"] = instantiate(self.cfg.model)
        return self._built["model"]

    @property
    def trunk(self) -> torch.nn.Module:
        return next(m for m in self.model.modules() if isinstance(m, MIMBackbone)).net

    def param_hyper(self) -> dict[str, tuple[float, float]]:
        """{parameter name: (lr, weight decay)} as the config's optimizer would train it."""
        if "hyper" not in self._built:
            self.cfg.optimizer.params.model = self.model  # as detectron2's lazyconfig_train_net does
            groups = instantiate(self.cfg.optimizer.params)
            names = {id(p): n for n, p in self.model.named_parameters()}
            lr, wd = self.get("optimizer.lr"), self.get("optimizer.weight_decay")
            self._built["hyper"] = {
                names[id(p)]: (g.get("lr", lr), g.get("weight_decay", wd)) for g in groups for p in g["params"]
            }
        return self._built["hyper"]


@functools.lru_cache(maxsize=None)
def load_row(name: str) -> Row:
    return Row(name, LazyConfig.load(config_for_backbone(name)))


def plain(value: Any) -> Any:
    """OmegaConf containers -> Python, lists -> tuples (configs store tuples as lists)."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, (list, tuple)):
        return tuple(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def augmentations(nodes) -> list[tuple[str, dict]]:
    """Every augmentation with all its constructor arguments, defaults included."""
    out = []
    for node in nodes:
        aug = instantiate(node)
        args = inspect.signature(type(aug).__init__).parameters
        out.append((type(aug).__name__, {a: plain(getattr(aug, a)) for a in args if a != "self"}))
    return out


def multiplier_curve(node, max_iter: int, marks: tuple[int, ...]) -> list[float]:
    """The lr multiplier at iterations 0, around each of ``marks`` and at the end."""
    scheduler = instantiate(node)
    iters = sorted({0, max_iter - 1, *(m + d for m in marks for d in (-1, 0, 1) if 0 <= m + d < max_iter)})
    return [round(scheduler(i / max_iter), 9) for i in iters]


def lr_factors(row: Row, base_lr: float) -> dict[str, float]:
    """lr / base lr of the trunk's embeddings and blocks, and of the heads."""
    out = {}
    for name, (lr, _) in row.param_hyper().items():
        if ".blocks." in name:
            key = "blocks." + name.split(".blocks.")[1].split(".")[0]
        elif ".patch_embed." in name or name.endswith(".pos_embed"):
            key = "embeddings"
        elif name.startswith(("proposal_generator.", "roi_heads.")):
            key = "heads"
        else:
            continue
        out.setdefault(key, set()).add(round(lr / base_lr, 9))
    return {k: (v.pop() if len(v) == 1 else tuple(sorted(v))) for k, v in out.items()}


def trunk_weight_decays(row: Row) -> dict[str, tuple[float, ...]]:
    """Weight decays the trunk's parameters get, by kind (norms, position tables, the rest)."""
    trunk_prefix = next(n for n, m in row.model.named_modules() if isinstance(m, MIMBackbone)) + ".net."
    norms = {f"{trunk_prefix}{n}.{p}" for n, m in row.trunk.named_modules()
             if isinstance(m, torch.nn.LayerNorm) for p, _ in m.named_parameters(recurse=False)}
    kinds: dict[str, set] = {}
    for name, (_, wd) in row.param_hyper().items():
        if not name.startswith(trunk_prefix):
            continue
        kind = ("norm" if name in norms else "pos_embed" if name.endswith(".pos_embed")
                else "relative_position_bias_table" if name.endswith("relative_position_bias_table")
                else "rel_pos_h/w" if name.endswith(("rel_pos_h", "rel_pos_w")) else "other")
        kinds.setdefault(kind, set()).add(wd)
    return {k: tuple(sorted(v)) for k, v in kinds.items()}


# ---- the table -------------------------------------------------------------------------------------
def _shared_facts(source: str) -> list[Fact]:
    """Checkpoints kept (detectron2 configs/common/train.py and ConvMAE's config: 100); proposal counts
    and the detection thresholds the AP is computed from (both recipes keep detectron2's Mask R-CNN
    values: configs/common/models/mask_rcnn_fpn.py, FastRCNNOutputLayers)."""
    return [
        Fact("checkpoints kept", 100, source, lambda r: r.get("train.checkpointer.max_to_keep"), ours=3,
             why="disk: a 100-epoch run writes 37-100 checkpoints of 0.5-1.2 GB each; the result does not depend on it",
             paper_switch=("train.checkpointer.max_to_keep=100",)),
        Fact("RPN proposals kept (pre/post NMS; train, test)", ((2000, 1000), (1000, 1000)), source, lambda r: (
            (r.model.proposal_generator.pre_nms_topk[True], r.model.proposal_generator.pre_nms_topk[False]),
            (r.model.proposal_generator.post_nms_topk[True], r.model.proposal_generator.post_nms_topk[False]))),
        Fact("test score threshold, NMS threshold, detections per image", (0.05, 0.5, 100), source, lambda r: (
            r.model.roi_heads.box_predictor.test_score_thresh, r.model.roi_heads.box_predictor.test_nms_thresh,
            r.model.roi_heads.box_predictor.test_topk_per_image)),
    ]


def _vitdet_facts(size: str, source: str, checkpoint: str) -> list[Fact]:
    depth, dim, heads, drop_path, global_blocks, decay = {
        "b": (12, 768, 12, 0.1, (2, 5, 8, 11), 0.7), "l": (24, 1024, 16, 0.4, (5, 11, 17, 23), 0.8)}[size]
    max_iter = 184375  # 100 ep = 184375 iters * 64 images/iter / 118000 images/ep
    official_schedule = L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(values=[1.0, 0.1, 0.01], milestones=[163889, 177546],
                                             num_updates=max_iter),
        warmup_length=250 / max_iter, warmup_factor=0.001)
    marks = (250, 163889, 177546)
    layer_factors = {"embeddings": round(decay ** (depth + 1), 9), "heads": 1.0,
                     **{f"blocks.{i}": round(decay ** (depth - i), 9) for i in range(depth)}}
    return [
        # data: large-scale jitter at 1024, padded to a square by the model
        Fact("train augmentation", augmentations([
            L(T.RandomFlip)(horizontal=True),
            L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=1024, target_width=1024),
            L(T.FixedSizeCrop)(crop_size=(1024, 1024), pad=False)]), LSJ,
            lambda r: augmentations(r.cfg.dataloader.train.mapper.augmentations)),
        Fact("square_pad of the pyramid", 1024, VITDET_MODEL, lambda r: r.get("model.backbone.square_pad")),
        Fact("detector (test inputs unpadded: detectron2's own postprocess)", "GeneralizedRCNN", VITDET_MODEL,
             lambda r: type(r.model).__name__),
        Fact("boxes recomputed from cropped masks", True, LSJ,
             lambda r: r.get("dataloader.train.mapper.recompute_boxes")),
        Fact("instance masks in training", True, COCO_DATA,
             lambda r: r.get("dataloader.train.mapper.use_instance_mask")),
        Fact("train/test image format", ("RGB", "RGB"), LSJ, lambda r: (
            r.get("dataloader.train.mapper.image_format"), r.get("dataloader.test.mapper.image_format"))),
        Fact("pixel mean/std, input format", (*IMAGENET_RGB, "RGB"), VITDET_MODEL,
             lambda r: (r.get("model.pixel_mean"), r.get("model.pixel_std"), r.get("model.input_format"))),
        Fact("test resize", augmentations([L(T.ResizeShortestEdge)(short_edge_length=1024, max_size=1024)]), LSJ,
             lambda r: augmentations(r.cfg.dataloader.test.mapper.augmentations)),
        Fact("total batch", 64, LSJ, lambda r: r.get("dataloader.train.total_batch_size")),
        # optimizer
        Fact("optimizer", "AdamW", OPTIM, lambda r: r.cfg.optimizer._target_.__name__),
        Fact("lr (for total batch 64; not rescaled with the batch)", 1e-4, OPTIM, lambda r: r.get("optimizer.lr")),
        Fact("param groups' base lr = optimizer lr", 1e-4, OPTIM, lambda r: r.get("optimizer.params.base_lr")),
        Fact("betas", (0.9, 0.999), OPTIM, lambda r: r.get("optimizer.betas")),
        Fact("weight decay", 0.1, OPTIM, lambda r: r.get("optimizer.weight_decay")),
        Fact("weight decay by trunk parameter kind (0 on norms and pos_embed, 0.1 elsewhere)",
             {"norm": (0.0,), "pos_embed": (0.0,), "rel_pos_h/w": (0.1,), "other": (0.1,)},
             f"{OPTIM} (weight_decay_norm=0); {VITDET_B} (overrides pos_embed)", trunk_weight_decays),
        Fact(f"layer-wise lr decay {decay} over {depth} blocks", layer_factors, source,
             lambda r: lr_factors(r, r.get("optimizer.lr"))),
        # schedule
        Fact("iterations (100 epochs)", max_iter, VITDET_B, lambda r: r.get("train.max_iter")),
        Fact("lr multiplier (warmup 250 its, x0.1 at 163889 and 177546)",
             multiplier_curve(official_schedule, max_iter, marks), VITDET_B,
             lambda r: multiplier_curve(r.cfg.lr_multiplier, r.get("train.max_iter"), marks)),
        # backbone
        Fact("trunk width / depth / heads", (dim, depth, heads), source,
             lambda r: (r.trunk.embed_dim, len(r.trunk.blocks), r.trunk.blocks[0].attn.num_heads)),
        Fact("input size of the trunk", 1024, VITDET_MODEL, lambda r: r.get("model.backbone.net.img_size")),
        Fact("window size per block (0 = global)", tuple(0 if i in global_blocks else 14 for i in range(depth)),
             source, lambda r: tuple(r.trunk.window_sizes)),
        Fact("decomposed rel-pos in every block", True, VITDET_MODEL,
             lambda r: all(b.attn.use_rel_pos for b in r.trunk.blocks)),
        Fact("drop path (last block)", drop_path, source, lambda r: round(r.trunk.blocks[-1].drop_path.drop_prob, 6)),
        Fact("pretraining position table (224 px + class token slot)", (1, 197, dim), VITDET_MODEL,
             lambda r: tuple(r.trunk.pos_embed.shape)),
        # neck and heads
        Fact("simple feature pyramid", ((4.0, 2.0, 1.0, 0.5), 256, "LN"), VITDET_MODEL, lambda r: (
            r.get("model.backbone.scale_factors"), r.get("model.backbone.out_channels"), r.get("model.backbone.norm"))),
        Fact("RPN convs, box head convs/fcs, head norms", ((-1, -1), (256,) * 4, (1024,), "LN", "LN"), VITDET_MODEL,
             lambda r: (r.get("model.proposal_generator.head.conv_dims"), r.get("model.roi_heads.box_head.conv_dims"),
                        r.get("model.roi_heads.box_head.fc_dims"), r.get("model.roi_heads.box_head.conv_norm"),
                        r.get("model.roi_heads.mask_head.conv_norm"))),
        # precision and weights
        Fact("mixed precision (fp16 AMP: detectron2's AMPTrainer), fp16 gradient compression", (True, True), VITDET_B,
             lambda r: (r.get("train.amp.enabled"), r.get("train.ddp.fp16_compression"))),
        Fact("pretrained checkpoint", checkpoint, source + " (train.init_checkpoint: the MAE release, "
             "re-hosted by detectron2)", lambda r: r.get("train.init_checkpoint")),
        *_shared_facts(D2 + "configs/common/train.py, configs/common/models/mask_rcnn_fpn.py"),
    ]


def _convmae_facts(epochs: int) -> list[Fact]:
    max_iter = 368750 if epochs == 100 else 368750 // 4  # 100 ep = 368750 iters * 32 images/iter / 118000
    warmup = 0.125 / 100 * (1 if epochs == 100 else 4)
    source = CONVMAE if epochs == 100 else f"{CONVMAE_25} (derived from {CONVMAE})"
    official_schedule = L(WarmupParamScheduler)(
        scheduler=L(CosineParamScheduler)(start_value=1.0, end_value=0.0), warmup_length=warmup, warmup_factor=0.001)
    marks = (round(warmup * max_iter), max_iter // 2)
    # seg_pad_value 0: ConvMAE ran detectron2 0.6 (DET/DETECTION.md), whose FixedSizeCrop padded masks
    # with fvcore PadTransform's default 0 (fvcore f10a164); detectron2 later made FixedSizeCrop's default 255
    square = L(T.FixedSizeCrop)(crop_size=(1024, 1024), pad_value=128.0, seg_pad_value=0)
    return [
        Fact("train augmentation (resize, crop padded to 1024x1024, flip last)", augmentations([
            L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=1024, target_width=1024),
            square, L(T.RandomFlip)(horizontal=True)]), CONVMAE,
            lambda r: augmentations(r.cfg.dataloader.train.mapper.augmentations)),
        Fact("test resize and padding", augmentations([
            L(T.ResizeShortestEdge)(short_edge_length=1024, max_size=1024), square]), CONVMAE,
            lambda r: augmentations(r.cfg.dataloader.test.mapper.augmentations)),
        Fact("predictions rescaled from the resized image inside the padded input, one factor for both axes",
             True, CONVMAE + " (GeneralizedRCNNImageListForward(lsj_postprocess=True))",
             lambda r: isinstance(r.model, PaddedInputRCNN)),
        Fact("boxes recomputed from cropped masks", True, CONVMAE,
             lambda r: r.get("dataloader.train.mapper.recompute_boxes")),
        Fact("instance masks in training", True, CONVMAE, lambda r: r.get("dataloader.train.mapper.use_instance_mask")),
        Fact("train/test image format", ("RGB", "RGB"), CONVMAE, lambda r: (
            r.get("dataloader.train.mapper.image_format"), r.get("dataloader.test.mapper.image_format"))),
        Fact("pixel mean/std, input format", (*IMAGENET_RGB, "RGB"), CONVMAE,
             lambda r: (r.get("model.pixel_mean"), r.get("model.pixel_std"), r.get("model.input_format"))),
        Fact("total batch", 32, CONVMAE, lambda r: r.get("dataloader.train.total_batch_size")),
        Fact("optimizer", "AdamW", CONVMAE, lambda r: r.cfg.optimizer._target_.__name__),
        Fact("lr (for total batch 32; not rescaled with the batch)", 8e-5, CONVMAE, lambda r: r.get("optimizer.lr")),
        Fact("betas", (0.9, 0.999), CONVMAE, lambda r: r.get("optimizer.betas")),
        Fact("weight decay", 0.1, CONVMAE, lambda r: r.get("optimizer.weight_decay")),
        Fact("weight decay by trunk parameter kind (0 on norms and rel-pos bias tables; pos_embed frozen)",
             {"norm": (0.0,), "relative_position_bias_table": (0.0,), "other": (0.1,)}, CONVMAE,
             trunk_weight_decays),
        Fact("one lr for every parameter (no layer-wise decay)", {1.0}, CONVMAE,
             lambda r: {round(lr / r.get("optimizer.lr"), 9) for lr, _ in r.param_hyper().values()}),
        Fact(f"iterations ({epochs} epochs)", max_iter, source, lambda r: r.get("train.max_iter")),
        Fact(f"lr multiplier (cosine to 0, linear warmup over {warmup:.4%} of training)",
             multiplier_curve(official_schedule, max_iter, marks), source,
             lambda r: multiplier_curve(r.cfg.lr_multiplier, r.get("train.max_iter"), marks)),
        Fact("trunk widths / depths", ((256, 384, 768), (2, 2, 11)), CONVMAE, lambda r: (
            r.trunk.embed_dims, (len(r.trunk.blocks1), len(r.trunk.blocks2), len(r.trunk.blocks3)))),
        Fact("input size of the trunk", 1024, CONVMAE, lambda r: r.get("model.backbone.bottom_up.img_size")),
        Fact("window size per stage-3 block (0 = global)", tuple(0 if i in (0, 3, 6, 10) else 16 for i in range(11)),
             CONVMAE + " and DET/models/convmae.py", lambda r: tuple(b.window_size for b in r.trunk.blocks3)),
        Fact("shared windowed and global relative position bias tables", (True, True),
             "Alpha-VL/ConvMAE DET/models/convmae.py (ConvViTDet)",
             lambda r: (r.trunk.windowed_rel_pos_bias is not None, r.trunk.global_rel_pos_bias is not None)),
        Fact("frozen sin-cos position table", False, CONVMAE + " (sincos_pos_embed=True)",
             lambda r: r.trunk.pos_embed.requires_grad),
        Fact("drop path (last block)", 0.1, CONVMAE, lambda r: round(r.trunk.blocks3[-1].drop_path.drop_prob, 6)),
        Fact("FPN", (("s0", "s1", "s2", "s3"), 256, "SyncBN"), CONVMAE, lambda r: (
            r.get("model.backbone.in_features"), r.get("model.backbone.out_channels"), r.get("model.backbone.norm"))),
        Fact("RPN convs, box head convs/fcs, mask head convs", ((-1, -1), (256,) * 4, (1024,), (256,) * 5), CONVMAE,
             lambda r: (r.get("model.proposal_generator.head.conv_dims"), r.get("model.roi_heads.box_head.conv_dims"),
                        r.get("model.roi_heads.box_head.fc_dims"), r.get("model.roi_heads.mask_head.conv_dims"))),
        Fact("box and mask head norm: NaiveSyncBatchNorm, stats_mode N", ("N", "N"), CONVMAE, lambda r: tuple(
            next(m for m in getattr(r.model.roi_heads, head).modules() if isinstance(m, NaiveSyncBatchNorm))._stats_mode
            for head in ("box_head", "mask_head"))),
        Fact("mixed precision (fp16 AMP: detectron2's AMPTrainer), fp16 gradient compression", (True, True), CONVMAE,
             lambda r: (r.get("train.amp.enabled"), r.get("train.ddp.fp16_compression"))),
        Fact("pretrained checkpoint", "convmae_base", CONVMAE + " (bottom_up.pretrained='./convmae_base.pth')",
             lambda r: r.get("train.init_checkpoint")),
        *_shared_facts(CONVMAE),
    ]


TABLE: dict[str, list[Fact]] = {
    "mae_vit_base": _vitdet_facts("b", VITDET_B, "mae_pretrain_vit_base"),
    "mae_vit_large": _vitdet_facts("l", VITDET_L, "mae_pretrain_vit_large"),
    "sim_vit_base": _vitdet_facts("b", f"{VITDET_B}; {SIM}", "sim_vit_base"),
    "convmae_base": _convmae_facts(25),
    "convmae_base_100ep": _convmae_facts(100),
}
CASES = [pytest.param(row, fact, id=f"{row}: {fact.what}") for row, facts in TABLE.items() for fact in facts]


@pytest.mark.parametrize("row, fact", CASES)
def test_paper_row_recipe(row: str, fact: Fact):
    value = fact.read(load_row(row))
    if fact.ours is None:
        assert value == fact.official, f"{row}: {fact.what}: ours {value!r}, official {fact.official!r} ({fact.source})"
        return
    assert value == fact.ours, f"{row}: {fact.what}: expected our documented choice {fact.ours!r} ({fact.why})"
    paper = Row(row, LazyConfig.apply_overrides(LazyConfig.load(config_for_backbone(row)), list(fact.paper_switch)))
    assert fact.read(paper) == fact.official, f"{row}: {fact.paper_switch} does not give the official value"


def test_table_covers_every_det_paper_row():
    paper_rows = {row for e in ENCODERS.values() if e.weights for row, _ in e.det_rows}
    assert set(TABLE) == paper_rows


@pytest.mark.parametrize("row", sorted(TABLE))
def test_checkpoint_is_the_encoders_official_weights(row: str):
    """The config's checkpoint name and the encoder table's agree, and name a known official file."""
    encoder = next(e for e in ENCODERS.values() if any(row == r for r, _ in e.det_rows))
    name = load_row(row).get("train.init_checkpoint")
    assert name == encoder.weights and name in OFFICIAL_WEIGHTS
