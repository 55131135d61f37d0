"""Pretrain MAE, ConvMAE or SIM on a folder of images.

    python tools/pretrain.py --config configs/pretrain/mae_tiny_toy.py --data DIR [--output DIR]
        [--resume [CKPT]] [key=value ...]
    torchrun --nproc_per_node 8 tools/pretrain.py --config configs/pretrain/mae_vit_base_800ep.py --data DIR
    python tools/pretrain.py --export CKPT [--output encoder.pth]

Every knob is a config variable (see pretrain/engine.py DEFAULTS); ``key=value`` overrides any of them
(``model_kwargs.norm_pix_loss=True`` one model argument). The run writes checkpoints, config.json,
TensorBoard scalars (tb/), reconstruction grids (vis/) and, at the end, the encoder in the official
``{'model': state_dict}`` format (encoder.pth) to the output folder.
"""
from __future__ import annotations

import argparse
import os

import _toolpath  # noqa: F401  (must come first: see tools/_toolpath.py)

from pretrain.engine import export_encoder, load_config, train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="Python config file (configs/pretrain/*.py)")
    parser.add_argument("--data", help="image folder (any depth) or list file; overrides the config's data")
    parser.add_argument("--output", help="output folder (default output/<config name>); with --export the file")
    parser.add_argument("--resume", nargs="?", const=True, default=None,
                        help="resume from the latest checkpoint in the output folder, or from CKPT")
    parser.add_argument("--export", metavar="CKPT", help="write the encoder of a training checkpoint and exit")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args(argv)

    if args.export:
        out = args.output or os.path.join(os.path.dirname(os.path.abspath(args.export)), "encoder.pth")
        print(f"encoder -> {export_encoder(args.export, out)}")
        return
    if not args.config:
        parser.error("--config is required to train (or pass --export CKPT)")
    extra = {}
    if args.data:
        extra["data"] = args.data
    if args.output:
        extra["output_dir"] = args.output
    if args.resume is not None:
        extra["resume"] = args.resume
    cfg = load_config(args.config, args.overrides, **extra)
    if not cfg["data"]:
        parser.error("no data: pass --data DIR (a folder of images or a list file) or set data in the config")
    train(cfg)


if __name__ == "__main__":
    main()
