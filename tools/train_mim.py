"""Pretrain MAE, ConvMAE or SIM on a folder of images.

    python tools/train_mim.py --config configs/pretrain/mae_tiny_toy.py --data DIR [--output DIR]
        [--resume | --resume-from CKPT | --overwrite] [key=value ...]
    torchrun --nproc_per_node 8 tools/train_mim.py --config configs/pretrain/mae_vit_base_800ep.py --data DIR
    python tools/train_mim.py --export CKPT [--output encoder.pth]

Every knob is a config variable (see pretrain/config.py PretrainConfig); ``key=value`` overrides any of them
(``model_kwargs.norm_pix_loss=True`` one model argument). The run writes checkpoints, config.json,
TensorBoard scalars (tb/), reconstruction grids (vis/) and, at the end, the encoder in the official
``{'model': state_dict}`` format (encoder.pth) to the output folder. ``knn_data=DIR`` (a labelled folder:
train/<class>/*, val/<class>/*) adds kNN top-1/top-5 of the encoder every ``knn_every_epochs`` epochs to
log.jsonl and TensorBoard.

An output folder holds one run: a folder with another run in it is refused unless you continue that
run (--resume: its latest checkpoint; --resume-from CKPT: a given one) or pass --overwrite (deletes it
first), and a folder another run is writing to right now is refused. Bad values (batch_size=0,
epochs=0, lr=0, ...) are refused before anything is built, with what is allowed.
"""
from __future__ import annotations

import argparse
import os
import sys

from pretrain.checkpoints import CheckpointError
from pretrain.config import ConfigError, load_config
from pretrain.engine import train
from pretrain.run_dir import RunDirError
from pretrain.train_state import export_encoder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="Python config file (configs/pretrain/*.py)")
    parser.add_argument("--data", help="image folder (any depth) or list file; overrides the config's data")
    parser.add_argument("--output", help="output folder (default output/<config name>); with --export the file")
    parser.add_argument("--resume", action="store_true", help="continue the run in the output folder from its "
                        "latest checkpoint")
    parser.add_argument("--resume-from", metavar="CKPT", help="continue from this training checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the run already in the output folder and start again")
    parser.add_argument("--export", metavar="CKPT", help="write the encoder of a training checkpoint and exit")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args(argv)

    if args.export:
        out = args.output or os.path.join(os.path.dirname(os.path.abspath(args.export)), "encoder.pth")
        try:
            print(f"encoder -> {export_encoder(args.export, out)}")
        except CheckpointError as e:  # missing, unreadable, unsafe or not a training checkpoint
            sys.exit(f"error: {e}")
        return
    if not args.config:
        parser.error("--config is required to train (or pass --export CKPT)")
    extra = {}
    if args.data:
        extra["data"] = args.data
    if args.output:
        extra["output_dir"] = args.output
    if args.resume and args.resume_from:
        parser.error("pass --resume (latest checkpoint of --output) or --resume-from CKPT, not both")
    if args.resume or args.resume_from:
        extra["resume"] = args.resume_from or True
    if args.overwrite:
        extra["overwrite"] = True
    try:
        cfg = load_config(args.config, args.overrides, **extra)
    except (KeyError, ValueError, FileNotFoundError) as e:  # unknown keys, not key=value, no such file
        parser.error(str(e.args[0]))
    if not cfg.data:
        parser.error("no data: pass --data DIR (a folder of images or a list file) or set data in the config")
    try:
        train(cfg)
    except (ConfigError, RunDirError, CheckpointError) as e:  # messages that say what to do
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
