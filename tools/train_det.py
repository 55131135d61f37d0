"""Mask R-CNN transfer on detectron2: train or evaluate a paper config with one of our backbones.

    python tools/train_det.py --backbone convmae_base --weights convmae_base.pth             # COCO
    python tools/train_det.py --backbone vit_tiny --dataset toy                              # CPU toy run
    python tools/train_det.py --backbone mae_vit_base --eval-only --weights output/model_final.pth
    python tools/train_det.py --backbone mae_vit_base --num-gpus 8 train.max_iter=1000       # overrides

--dataset: coco (detectron2's layout under $DETECTRON2_DATASETS), toy (generated), a registered
detectron2 dataset name (or TRAIN,TEST), or TRAIN_JSON:TRAIN_IMAGES,TEST_JSON:TEST_IMAGES.
Trailing key=value pairs override the LazyConfig (detectron2 syntax).
"""
from __future__ import annotations

import _toolpath  # noqa: F401  (must come first: see tools/_toolpath.py)

import argparse
import json
import os
from pathlib import Path

import torch
from detectron2.config import LazyConfig
from detectron2.engine import default_setup, launch
from detectron2.utils import comm

from transfer.det.configs import BACKBONE_CONFIGS, config_for_backbone
from transfer.det.data import USE_FAST_COCO_EVAL, num_classes, resolve_dataset
from transfer.det.engine import do_eval_only, do_train


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default=None, choices=sorted(BACKBONE_CONFIGS),
                   help="picks the paper config for this backbone")
    p.add_argument("--config", default=None, help="a LazyConfig file (overrides --backbone's config)")
    p.add_argument("--weights", default="", help="pretraining checkpoint (MAE/ConvMAE/SIM, official or ours) "
                   "or a detectron2 checkpoint of the whole detector")
    p.add_argument("--dataset", default="coco")
    p.add_argument("--output", default=None, help="output dir (default: output/det/<config name>)")
    p.add_argument("--eval-only", action="store_true")
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint in the output dir")
    p.add_argument("--num-gpus", type=int, default=1 if torch.cuda.is_available() else 0)
    p.add_argument("--num-machines", type=int, default=1)
    p.add_argument("--machine-rank", type=int, default=0)
    p.add_argument("--dist-url", default="auto")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="key=value LazyConfig overrides")
    args = p.parse_args(argv)
    if not args.backbone and not args.config:
        p.error("give --backbone NAME or --config FILE")
    if args.weights and not Path(args.weights).is_file():
        p.error(f"--weights {args.weights}: no such file. Pass an official MAE/ConvMAE/SIM checkpoint, one "
                "exported by tools/pretrain.py, or a detectron2 checkpoint of the detector.")
    return args


def setup(args):
    config_file = args.config or config_for_backbone(args.backbone)
    cfg = LazyConfig.load(config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    output = args.output or os.path.join("output", "det", Path(config_file).stem)
    splits = resolve_dataset(args.dataset, toy_root=os.path.join("datasets", "toy", "coco"))
    cfg.dataloader.train.dataset.names = splits.train
    cfg.dataloader.test.dataset.names = splits.test
    cfg.dataloader.evaluator.dataset_name = splits.test
    cfg.dataloader.evaluator.output_dir = os.path.join(output, "inference")
    cfg.dataloader.evaluator.use_fast_impl = USE_FAST_COCO_EVAL
    cfg.model.roi_heads.num_classes = num_classes(splits.train)
    cfg.train.output_dir = output
    cfg.train.device = "cuda" if args.num_gpus > 0 else "cpu"
    if args.weights:
        cfg.train.init_checkpoint = args.weights
    default_setup(cfg, args)
    return cfg


def main(args) -> dict:
    cfg = setup(args)
    results = do_eval_only(cfg) if args.eval_only else do_train(cfg, resume=args.resume)
    if comm.is_main_process() and results:
        path = os.path.join(cfg.train.output_dir, "results.json")
        with open(path, "w") as f:
            json.dump({task: dict(metrics) for task, metrics in results.items()}, f, indent=1)
        print(f"final evaluation (also in {path}): {json.dumps(results)}")
    return results


def cli(argv=None) -> None:
    args = parse_args(argv)
    launch(main, max(args.num_gpus, 1), num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))


if __name__ == "__main__":
    cli()
