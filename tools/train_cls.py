"""ImageNet classification of an encoder: fine-tuning, linear probing, kNN or few-shot, as the papers run them.

    python tools/train_cls.py --backbone mae_vit_base --protocol finetune --data /data/imagenet
    torchrun --nproc_per_node 8 tools/train_cls.py --backbone mae_vit_base --protocol linprobe --data /data/imagenet
    python tools/train_cls.py --backbone mae_vit_base --protocol finetune --data /data/imagenet \\
        --eval-only --weights mae_finetuned_vit_base                 # the released fine-tuned model: 83.664
    python tools/train_cls.py --backbone sim_vit_base --protocol fewshot --data /data/imagenet \\
        subset_list=imagenet_subset1/1percent.txt
    python tools/train_cls.py --backbone mae_vit_tiny --protocol finetune --data datasets/toy/cls   # CPU toy
    python tools/train_cls.py --config configs/cls/mae_vit_base_finetune.py --data DIR accum_iter=8 batch_size=16

--backbone NAME --protocol P picks the paper row's config (configs/cls/<NAME>_<P>.py, listed in
pretrain/encoders.py; kNN has no paper row: the defaults, k 20, T 0.07, and the encoder's paper
checkpoint); --config FILE runs any config (--backbone / --protocol then override its model / protocol).
key=value overrides any config key (transfer/cls/config.py lists them). Weights: a row starts from its
paper's pretraining checkpoint (downloaded once); --weights NAME|PATH|URL picks another, --from-scratch
none. With --eval-only, --weights is a trained classifier (an official fine-tuned file, loaded strictly)
and without it the newest checkpoint of --output is evaluated. --data: ImageNet's layout, DIR/train/<class>/* and
DIR/val/<class>/* (any image-folder tree of that shape; the classes are train/'s folders).

An output folder (default output/cls/<row>) holds one run: a used one is refused unless --resume
(continue its newest checkpoint), --eval-only (writes results.json into it) or --overwrite. Gradient
accumulation for fewer GPUs: accum_iter=N keeps batch_size x accum_iter x GPUs (and so the lr). Every
run writes results.json with acc1 / acc5 (%).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pretrain.checkpoints import CheckpointError
from pretrain.config import ConfigError
from pretrain.encoders import ENCODERS, paper_rows
from pretrain.labelled_data import UnknownClassError, UnreadableImageError
from pretrain.run_dir import RunDirError
from pretrain.weights import WeightsNotFoundError, choose_weights
from transfer.cls.config import PROTOCOLS, ClsConfig
from transfer.cls.train import run
from transfer.config_table import ConfigTable
from transfer.run_flags import user_error

CLS_CONFIGS = ConfigTable("cls")
# input problems a user fixes (message says how) -> "error: ..." and exit status 1, no traceback
INPUT_ERRORS = (CheckpointError, ConfigError, RunDirError, WeightsNotFoundError, UnknownClassError,
                UnreadableImageError, FileNotFoundError)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", choices=sorted(ENCODERS), help="the encoder (with --protocol: its paper row)")
    p.add_argument("--protocol", choices=PROTOCOLS, help="finetune | linprobe | knn | fewshot")
    p.add_argument("--config", help="a classification config file (configs/cls/*.py)")
    p.add_argument("--data", help="ImageNet-layout folder: DIR/train/<class>/*, DIR/val/<class>/*")
    p.add_argument("--weights", default="", help="official checkpoint name, file or URL (default: the row's "
                   "pretraining checkpoint; with --eval-only a trained classifier)")
    p.add_argument("--from-scratch", action="store_true", help="start from random initialisation")
    p.add_argument("--allow-partial-weights", action="store_true", help="accept a pretraining checkpoint that "
                   "leaves trunk parameters at init (e.g. a shallower encoder); the log lists them")
    p.add_argument("--eval-only", action="store_true", help="evaluate --weights (or the newest checkpoint of --output)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its newest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete the run already in --output and start again")
    p.add_argument("--output", help="output folder (default output/cls/<row or config name>)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = p.parse_intermixed_args(argv)  # key=value may come before and after the flags
    if not args.config and not (args.backbone and args.protocol):
        p.error("give --backbone NAME --protocol P, or --config FILE")
    if args.overwrite and (args.resume or args.eval_only):
        p.error("--overwrite deletes the run in --output: it cannot go with --resume or --eval-only")
    try:
        choose_weights(args.weights, args.from_scratch, None)
    except ValueError as exc:
        p.error(str(exc))
    args.parser = p
    return args


def config_file(args: argparse.Namespace) -> str | None:
    """--config, else the table's row for --backbone / --protocol, else None (the defaults: kNN)."""
    if args.config:
        return args.config
    row = f"{args.backbone}_{args.protocol}"
    return CLS_CONFIGS.path(row) if row in paper_rows("cls") else None


def build_config(args: argparse.Namespace) -> ClsConfig:
    """Defaults <- config file <- key=value <- the flags (--backbone, --protocol, --data, --output, weights)."""
    path = config_file(args)
    flags = {k: v for k, v in (("model", args.backbone), ("protocol", args.protocol), ("data", args.data),
                               ("allow_partial_weights", args.allow_partial_weights)) if v}
    cfg = ClsConfig.from_sources(path, args.overrides, **flags)
    if path is None and not any(item.startswith("weights=") for item in args.overrides):
        cfg.weights = ENCODERS[cfg.model].weights or ""  # no paper row (kNN): the encoder's paper checkpoint
    configured = "" if args.eval_only and cfg.trained else cfg.weights  # eval-only: a trained model, not a trunk
    cfg.weights = choose_weights(args.weights, args.from_scratch, configured).spec
    name = Path(path).stem if path else f"{cfg.model}_{cfg.protocol}"
    cfg.output_dir = args.output or cfg.output_dir or os.path.join("output", "cls", name)
    return cfg


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
    except (KeyError, ValueError, FileNotFoundError) as exc:  # unknown key, not key=value, no such --config
        args.parser.error(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
    try:
        return run(cfg, eval_only=args.eval_only, resume=args.resume, overwrite=args.overwrite)
    except INPUT_ERRORS as exc:
        sys.exit(f"error: {user_error(exc)}")


if __name__ == "__main__":
    main()
