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
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from detectron2.config import LazyConfig
from detectron2.engine import default_setup, launch
from detectron2.utils import comm
from torch.multiprocessing import ProcessExitedException

from pretrain.checkpoint_io import CheckpointError
from pretrain.encoders import OFFICIAL_WEIGHTS
from pretrain.weights import ChecksumError, WeightsNotFoundError, choose_weights, resolve_weights
from pretrain.run_dir import RunDirError, claim_run_dir
from transfer.det.log_setup import keep_environment_dump_off_screen
from transfer.det.configs import (
    BACKBONE_CONFIGS, ConfigValueError, check_override_keys, check_train_values, config_for_backbone,
)
from transfer.det.data import USE_FAST_COCO_EVAL, DatasetNotFoundError, check_dataset, num_classes, resolve_dataset
from transfer.det.distributed import micro_batch_size
from transfer.det.engine import do_eval_only, do_train
from transfer.run_flags import refuse_contradicting_flags


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
    args.init_weights = None  # chosen once, before any worker starts (cli)
    args.output_claimed = False  # set by cli, whose process then holds --output for the whole run
    return args


@dataclass(frozen=True)
class InitWeights:
    """What a run starts from: ``path`` ("" = random initialisation) and the sentence the log says."""

    path: str
    message: str
    loud: bool = False


def load_config(args) -> tuple[str, object]:
    """The config file and its LazyConfig with the command line's overrides, checked before use."""
    config_file = args.config or config_for_backbone(args.backbone)
    cfg = LazyConfig.load(config_file)
    check_override_keys(cfg, args.opts)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    check_train_values(cfg)
    return config_file, cfg


def output_dir(args, config_file: str) -> str:
    return args.output or os.path.join("output", "det", Path(config_file).stem)


def choose_init_weights(args, config_file: str, cfg) -> InitWeights:
    """--weights, else the checkpoint the config names (``train.init_checkpoint``), resolved to a local
    file (official names are downloaded once); --from-scratch or a config that names none: random init."""
    row, named, output = Path(config_file).name, cfg.train.get("init_checkpoint", ""), output_dir(args, config_file)
    if args.resume and os.path.isfile(os.path.join(output, "last_checkpoint")):
        return InitWeights("", f"resuming the run in {output}: the weights come from its last checkpoint")
    choice = choose_weights(args.weights, args.from_scratch, named)
    if choice.source == "--from-scratch":
        skipped = f", not from {named!r} that {row} names" if named else ""
        return InitWeights("", f"RANDOM INITIALISATION (--from-scratch){skipped}: no pretrained weights", loud=True)
    if choice.source == "none":
        return InitWeights("", f"random initialisation: {row} names no checkpoint and no --weights was given")
    spec, origin = choice.spec, "given by --weights" if choice.source == "--weights" else f"named by {row}"
    try:
        path = resolve_weights(spec)
    except WeightsNotFoundError as exc:
        if choice.source == "--weights":
            raise
        raise WeightsNotFoundError(f"{exc} ({row} starts from {spec!r}; --from-scratch trains it from random "
                                   "initialisation instead.)") from exc
    official = OFFICIAL_WEIGHTS.get(spec)
    what = f"official checkpoint {spec!r} ({official.filename})" if official else repr(spec)
    return InitWeights(path, f"INITIAL WEIGHTS: {what}, {origin}, read from {path}", loud=True)


def device_of(args) -> str:
    """cuda when GPUs are asked for and present; --num-gpus N on a machine without CUDA: CPU processes."""
    return "cuda" if args.num_gpus > 0 and torch.cuda.is_available() else "cpu"


def claim_output(args, config_file: str) -> None:
    """One run per output dir, held until this process ends (pretrain/run_dir.py)."""
    claim_run_dir(output_dir(args, config_file), resume=args.resume or args.eval_only, overwrite=args.overwrite)


def setup(args):
    config_file, cfg = load_config(args)
    output = output_dir(args, config_file)
    if comm.is_main_process() and not args.output_claimed:
        claim_output(args, config_file)
    comm.synchronize()  # the other processes write their logs there only once it is claimed (and cleared)
    init = args.init_weights or choose_init_weights(args, config_file, cfg)
    splits = resolve_dataset(args.dataset, toy_root=os.path.join("datasets", "toy", "coco"))
    if not args.eval_only:
        check_dataset(splits.train, recompute_boxes=bool(cfg.dataloader.train.mapper.get("recompute_boxes", False)))
    if args.eval_only or splits.test != splits.train:
        check_dataset(splits.test)
    cfg.dataloader.train.dataset.names = splits.train
    cfg.dataloader.test.dataset.names = splits.test
    cfg.dataloader.evaluator.dataset_name = splits.test
    cfg.dataloader.evaluator.output_dir = os.path.join(output, "inference")
    cfg.dataloader.evaluator.use_fast_impl = USE_FAST_COCO_EVAL
    cfg.model.roi_heads.num_classes = num_classes(splits.train)
    cfg.train.output_dir = output
    cfg.train.device = device_of(args)
    cfg.train.init_checkpoint = init.path
    cfg.train.allow_partial_weights = args.allow_partial_weights
    keep_environment_dump_off_screen(output, comm.get_rank())  # log.txt keeps it
    default_setup(cfg, args)
    logger = logging.getLogger("detectron2")
    logger.log(logging.WARNING if init.loud else logging.INFO, "==> %s", init.message)
    world, backend = comm.get_world_size(), "GPUs (NCCL)" if cfg.train.device == "cuda" else "the CPU (gloo)"
    logger.info("==> %s", f"{world} processes on {backend}" if world > 1 else f"1 process on {cfg.train.device}")
    return cfg


def run(args) -> dict:
    cfg = setup(args)
    results = do_eval_only(cfg) if args.eval_only else do_train(cfg, resume=args.resume)
    if comm.is_main_process() and results:
        path = os.path.join(cfg.train.output_dir, "results.json")
        with open(path, "w") as f:
            json.dump({task: dict(metrics) for task, metrics in results.items()}, f, indent=1)
        print(f"final evaluation (also in {path}): {json.dumps(results)}")
    return results


# what a user can fix: bad --weights, overrides or data; a used or busy --output
USER_ERRORS = (CheckpointError, RunDirError, ConfigValueError, WeightsNotFoundError, ChecksumError, DatasetNotFoundError)
REPORTED_BY_WORKER = 2  # exit code of a worker process that printed the error it met


def main(args) -> dict:
    """One process's run. With several processes, a process that meets a USER_ERRORS error prints it
    and exits with REPORTED_BY_WORKER, which cli passes on without the launcher's traceback."""
    try:
        return run(args)
    except USER_ERRORS as exc:
        if comm.get_world_size() == 1:
            raise
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(REPORTED_BY_WORKER)  # not SystemExit: the other processes wait in collectives


def cli(argv=None) -> None:
    args = parse_args(argv)
    try:
        config_file, cfg = load_config(args)  # bad overrides fail here, before any worker starts
        micro_batch_size(cfg.dataloader.train.total_batch_size, max(args.num_gpus, 1) * args.num_machines,
                         cfg.train.get("grad_accum_steps", 1))  # a batch that does not split: refused here
        args.init_weights = choose_init_weights(args, config_file, cfg)  # one download, not one per GPU
        if args.machine_rank == 0:  # the launching process holds --output while its workers run
            claim_output(args, config_file)
            args.output_claimed = True
        launch(main, max(args.num_gpus, 1), num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))
    except USER_ERRORS as exc:
        sys.exit(f"error: {exc}")
    except ProcessExitedException as exc:
        if exc.exit_code != REPORTED_BY_WORKER:
            raise
        sys.exit(REPORTED_BY_WORKER)  # the worker printed what went wrong


if __name__ == "__main__":
    cli()
