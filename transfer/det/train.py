"""Mask R-CNN fine-tuning and evaluation on detectron2: config selection and overrides, dataset and
initial-weights resolution, the output folder, then detectron2's ``launch`` of ``transfer.det.engine``'s
train / eval loop. ``tools/train_det.py`` is the command line over this module (its ``--help`` explains
the arguments; ``args`` below is its parsed ``argparse.Namespace``).
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

from pretrain.checkpoints import CheckpointError
from pretrain.encoders import OFFICIAL_WEIGHTS
from pretrain.run_dir import RunDirError, claim_run_dir
from pretrain.weights import ChecksumError, WeightsNotFoundError, choose_weights, resolve_weights
from transfer.det.configs import ConfigValueError, check_override_keys, check_train_values, config_for_backbone
from transfer.det.data import USE_FAST_COCO_EVAL, DatasetNotFoundError, check_dataset, num_classes, resolve_dataset
from transfer.det.distributed import micro_batch_size
from transfer.det.engine import do_eval_only, do_train
from transfer.det.log_setup import keep_environment_dump_off_screen
from transfer.run_flags import user_error

# what a user can fix: bad --weights, overrides or data; a used or busy --output
USER_ERRORS = (CheckpointError, RunDirError, ConfigValueError, WeightsNotFoundError, ChecksumError, DatasetNotFoundError)
REPORTED_BY_WORKER = 2  # exit code of a worker process that printed the error it met


@dataclass(frozen=True)
class InitWeights:
    """What a run starts from: ``path`` ("" = random initialisation) and the sentence the log says."""

    path: str
    message: str
    loud: bool = False


def load_config(args: argparse.Namespace) -> tuple[str, object]:
    """The config file and its LazyConfig with the command line's overrides, checked before use."""
    config_file = args.config or config_for_backbone(args.backbone)
    cfg = LazyConfig.load(config_file)
    check_override_keys(cfg, args.opts)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    check_train_values(cfg)
    return config_file, cfg


def output_dir(args: argparse.Namespace, config_file: str) -> str:
    """--output, else output/det/<config name>."""
    return args.output or os.path.join("output", "det", Path(config_file).stem)


def choose_init_weights(args: argparse.Namespace, config_file: str, cfg) -> InitWeights:
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


def device_of(args: argparse.Namespace) -> str:
    """cuda when GPUs are asked for and present; --num-gpus N on a machine without CUDA: CPU processes."""
    return "cuda" if args.num_gpus > 0 and torch.cuda.is_available() else "cpu"


def claim_output(args: argparse.Namespace, config_file: str) -> None:
    """One run per output dir, held until this process ends (pretrain/run_dir.py)."""
    claim_run_dir(output_dir(args, config_file), resume=args.resume or args.eval_only, overwrite=args.overwrite)


def _point_at_dataset(cfg, args: argparse.Namespace, output: str) -> None:
    """Register --dataset, check its files and set the loaders, evaluator and class count to it."""
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


def setup(args: argparse.Namespace):
    """This process's config of the run: output claimed (once), weights chosen, dataset checked,
    detectron2's ``default_setup`` done; the log says which weights and how many processes."""
    config_file, cfg = load_config(args)
    output = output_dir(args, config_file)
    if comm.is_main_process() and not getattr(args, "output_claimed", False):
        claim_output(args, config_file)
    comm.synchronize()  # the other processes write their logs there only once it is claimed (and cleared)
    init = getattr(args, "init_weights", None) or choose_init_weights(args, config_file, cfg)
    _point_at_dataset(cfg, args, output)
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


def run(args: argparse.Namespace) -> dict:
    """Set up, then train (with the final evaluation) or evaluate; the main process writes results.json."""
    cfg = setup(args)
    results = do_eval_only(cfg) if args.eval_only else do_train(cfg, resume=args.resume)
    if comm.is_main_process() and results:
        path = os.path.join(cfg.train.output_dir, "results.json")
        with open(path, "w") as f:
            json.dump({task: dict(metrics) for task, metrics in results.items()}, f, indent=1)
        print(f"final evaluation (also in {path}): {json.dumps(results)}")
    return results


def main(args: argparse.Namespace) -> dict:
    """One process's run. With several processes, a process that meets a USER_ERRORS error prints it
    and exits with REPORTED_BY_WORKER, which the launching process passes on without a traceback."""
    try:
        return run(args)
    except USER_ERRORS as exc:
        if comm.get_world_size() == 1:
            raise
        print(f"error: {user_error(exc)}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(REPORTED_BY_WORKER)  # not SystemExit: the other processes wait in collectives


def launch_run(args: argparse.Namespace) -> None:
    """Check the config and the batch split, choose the weights (one download, not one per GPU) and claim
    --output in the launching process, then start ``main`` in ``--num-gpus`` processes per machine."""
    config_file, cfg = load_config(args)  # bad overrides fail here, before any worker starts
    micro_batch_size(cfg.dataloader.train.total_batch_size, max(args.num_gpus, 1) * args.num_machines,
                     cfg.train.get("grad_accum_steps", 1))  # a batch that does not split: refused here
    args.init_weights = choose_init_weights(args, config_file, cfg)
    if args.machine_rank == 0:  # the launching process holds --output while its workers run
        claim_output(args, config_file)
        args.output_claimed = True
    launch(main, max(args.num_gpus, 1), num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
