"""UperNet fine-tuning and evaluation on mmengine's Runner: config selection, dataset and weights
resolution, then ``Runner.train()`` / ``Runner.test()`` unchanged (logs, checkpoints, launchers,
mIoU through mmseg's ``IoUMetric``). ``tools/train_seg.py`` is the command line over this module.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

import transfer.seg  # noqa: F401  (registers our modules, installs the weights_only checkpoint loader)
from transfer.config_table import ConfigTable
from transfer.seg.checkpoint_io import load_from_local_weights_only

SEG_CONFIGS = ConfigTable("seg", {
    "mae_vit_base": "upernet_mae_vit_base_512_160k_ade20k.py",
    "sim_vit_base": "upernet_sim_vit_base_512_160k_ade20k.py",
    "convmae_base": "upernet_convmae_base_512_160k_ade20k.py",
    "vit_tiny": "toy_upernet_vit_tiny.py",
    "convmae_tiny": "toy_upernet_convmae_tiny.py",
})
CONFIG_DIR = SEG_CONFIGS.folder
BACKBONE_CONFIGS = SEG_CONFIGS.files
config_for_backbone = SEG_CONFIGS.path
TOY_ROOT = os.path.join("datasets", "toy", "ade")
ADE_SPLITS = ("images/training", "annotations/training", "images/validation", "annotations/validation")


def _set_data_root(cfg: Config, root: str) -> None:
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(loader) is not None:
            cfg[loader].dataset.data_root = root


def resolve_dataset(cfg: Config, dataset: str, eval_only: bool) -> str:
    """Point the config's dataloaders at ``dataset`` and check the files are there.

    ``ade20k``: the config's data_root; ``toy``: datasets/toy/ade (written if missing); otherwise a
    folder in mmseg's ADE20K layout. Returns the data root."""
    if dataset == "toy":
        root = TOY_ROOT
        if not os.path.isdir(os.path.join(root, "images", "training")):
            from transfer.toy_datasets import write_ade_toy

            print_log(f"writing the ADE-format toy set to {root} (tools/make_toy_data.py --only ade)", logger="current")
            write_ade_toy(root)
        if cfg.train_dataloader.dataset.get("type") == "ADE20KDataset":
            raise ValueError(
                "--dataset toy needs a config with the toy classes (configs/seg/toy_*.py, e.g. --backbone vit_tiny); "
                "the ADE20K paper configs expect 150 classes"
            )
    else:
        root = cfg.train_dataloader.dataset.data_root if dataset == "ade20k" else dataset
    needed = ADE_SPLITS[2:] if eval_only else ADE_SPLITS
    missing = [d for d in needed if not os.path.isdir(os.path.join(root, d))]
    if missing:
        raise FileNotFoundError(
            f"dataset root {os.path.abspath(root)!r} lacks {', '.join(missing)}. Expected mmseg's ADE20K layout "
            "(ADEChallengeData2016: images/{training,validation}/*.jpg, annotations/{training,validation}/*.png; "
            "see mmsegmentation docs/en/user_guides/2_dataset_prepare.md). Pass --dataset "
            "/path/to/ADEChallengeData2016, or --dataset toy for the generated toy set."
        )
    _set_data_root(cfg, root)
    return root


def is_segmentor_checkpoint(path: str) -> bool:
    """True for an mmengine checkpoint of a whole segmentor (decode_head.* keys), False for a
    pretraining checkpoint of the encoder (official MAE / ConvMAE / SIM files or ours)."""
    try:
        obj = load_from_local_weights_only(path, map_location="cpu")
    except Exception:  # pretraining files with other pickled objects are read by transfer.backbones
        return False
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else {}
    return any(str(k).startswith(("decode_head.", "backbone.net.")) for k in state)


def _no_amp_without_cuda(cfg: Config) -> None:
    wrapper = cfg.optim_wrapper
    if wrapper.get("type") == "AmpOptimWrapper" and not torch.cuda.is_available():
        print_log("no CUDA device: AmpOptimWrapper replaced by OptimWrapper (fp32)", logger="current")
        wrapper.type = "OptimWrapper"
        wrapper.pop("dtype", None)
        wrapper.pop("loss_scale", None)


def build_config(
    config: str, dataset: str = "ade20k", weights: str = "", work_dir: str | None = None, resume: bool = False,
    eval_only: bool = False, launcher: str = "none", cfg_options: dict | None = None,
) -> Config:
    """The Runner config of a run (see ``tools/train_seg.py`` for the meaning of the arguments)."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or os.path.join("work_dirs", "seg", Path(config).stem)
    resolve_dataset(cfg, dataset, eval_only)
    _no_amp_without_cuda(cfg)

    if weights:
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"--weights {weights}: no such file. Pass an official MAE / ConvMAE / SIM pretraining checkpoint, "
                "one exported by tools/pretrain.py, or a segmentor checkpoint written by this tool."
            )
        if is_segmentor_checkpoint(weights):
            cfg.load_from = weights
        elif eval_only:
            raise ValueError(
                f"--eval-only needs a trained segmentor checkpoint; {weights} is a pretraining checkpoint of the "
                "backbone only (its heads would be random)"
            )
        else:
            cfg.model.pretrained = None
            cfg.model.backbone.pretrained = weights
    if eval_only and not cfg.get("load_from"):
        last = os.path.join(cfg.work_dir, "last_checkpoint")
        if not os.path.isfile(last):
            raise FileNotFoundError(
                f"--eval-only needs a segmentor checkpoint: pass --weights CKPT, or a --work-dir holding one "
                f"(no {last})"
            )
        cfg.load_from = Path(last).read_text().strip()
    cfg.resume = resume
    return cfg


def run(cfg: Config, eval_only: bool = False) -> dict:
    """Train (then the final validation) or evaluate; returns the last validation / test metrics."""
    runner = Runner.from_cfg(cfg)
    if eval_only:
        return dict(runner.test())
    runner.train()
    hub = runner.message_hub
    timers = ("val/time", "val/data_time")
    return {key[len("val/"):]: hub.get_scalar(key).current()
            for key in hub.log_scalars if key.startswith("val/") and key not in timers}
