"""Mask R-CNN transfer on detectron2: train or evaluate a paper config with one of our backbones.

    python tools/train_det.py --backbone mae_vit_base                 # COCO, from the checkpoint the row names
    python tools/train_det.py --backbone convmae_base --weights convmae_base.pth             # a local copy
    python tools/train_det.py --backbone mae_vit_tiny --dataset toy                              # CPU toy run
    python tools/train_det.py --backbone mae_vit_base --eval-only --weights output/model_final.pth
    python tools/train_det.py --backbone mae_vit_base --num-gpus 8 train.max_iter=1000       # overrides
    python tools/train_det.py --backbone mae_vit_base --num-gpus 2 train.grad_accum_steps=4  # batch 64 on 2 GPUs

--dataset: coco (detectron2's layout under $DETECTRON2_DATASETS), toy (generated), a registered
detectron2 dataset name (or TRAIN,TEST), or TRAIN_JSON:TRAIN_IMAGES,TEST_JSON:TEST_IMAGES.
Trailing key=value pairs override the LazyConfig (detectron2 syntax); keys the config does not have are
refused (``+key=value`` adds one on purpose).

Processes: --num-gpus N starts N processes per machine, one per GPU (NCCL); on a machine without CUDA
it starts N CPU processes (gloo). ``dataloader.train.total_batch_size`` is the number of images per
optimizer step, split over the processes and over ``train.grad_accum_steps`` micro-batches (default 1):
N processes give the same model as one process accumulating N micro-batches (same ``train.seed``),
because augmentation and the model's random sampling are seeded per draw (transfer/det/distributed.py).

Initial weights: a paper row starts from the official checkpoint its config names
(``train.init_checkpoint``, downloaded once and cached: ``pretrain.weights``); ``--weights NAME|PATH``
replaces it, ``--from-scratch`` starts from random initialisation instead. The log says which.
"""
from __future__ import annotations

import argparse
import sys

import torch
from torch.multiprocessing import ProcessExitedException

from pretrain.encoders import OFFICIAL_WEIGHTS
from transfer.det.configs import BACKBONE_CONFIGS
from transfer.det.train import REPORTED_BY_WORKER, USER_ERRORS, launch_run
from transfer.run_flags import refuse_contradicting_flags, user_error


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default=None, choices=sorted(BACKBONE_CONFIGS),
                   help="picks the paper config for this backbone")
    p.add_argument("--config", default=None, help="a LazyConfig file (overrides --backbone's config)")
    p.add_argument("--weights", default="", metavar="NAME|PATH",
                   help="pretraining checkpoint (MAE/ConvMAE/SIM, official or ours) or a detectron2 checkpoint of "
                   f"the whole detector: a file, a URL or an official name ({', '.join(sorted(OFFICIAL_WEIGHTS))}). "
                   "Default: the checkpoint the config names (train.init_checkpoint)")
    p.add_argument("--from-scratch", action="store_true",
                   help="start from random initialisation, not from the checkpoint the paper config names")
    p.add_argument("--allow-partial-weights", action="store_true",
                   help="load --weights even when it leaves backbone parameters at their initial values "
                   "(otherwise an error that names them)")
    p.add_argument("--dataset", default="coco")
    p.add_argument("--output", default=None, help="output dir (default: output/det/<config name>)")
    p.add_argument("--eval-only", action="store_true")
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint in the output dir")
    p.add_argument("--overwrite", action="store_true", help="delete the run already in the output dir and start "
                   "again (without --resume or --overwrite a used output dir is refused)")
    p.add_argument("--num-gpus", type=int, default=1 if torch.cuda.is_available() else 0, metavar="N",
                   help="processes per machine: one per GPU; without CUDA, N CPU processes talking gloo "
                   "(0 or 1: one process). Default: 1 with CUDA, else 0 (one CPU process)")
    p.add_argument("--num-machines", type=int, default=1)
    p.add_argument("--machine-rank", type=int, default=0)
    p.add_argument("--dist-url", default="auto")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="key=value LazyConfig overrides")
    args = p.parse_args(argv)
    refuse_contradicting_flags(p, args, "--output")
    if args.eval_only and (args.from_scratch or not args.weights):
        p.error("--eval-only evaluates a trained detector: pass --weights FILE "
                "(e.g. output/det/<row>/model_final.pth), without --from-scratch")
    return args


def cli(argv=None) -> None:
    args = parse_args(argv)
    try:
        launch_run(args)  # transfer/det/train.py
    except USER_ERRORS as exc:
        sys.exit(f"error: {user_error(exc)}")
    except ProcessExitedException as exc:
        if exc.exit_code != REPORTED_BY_WORKER:
            raise
        sys.exit(REPORTED_BY_WORKER)  # the worker printed what went wrong


if __name__ == "__main__":
    cli()
