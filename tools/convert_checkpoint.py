"""Convert a pretraining checkpoint (official MAE / ConvMAE / SIM release, or an encoder.pth of
tools/train_mim.py) into a checkpoint that detectron2 or mmseg loads into the backbone of one of our
configs, and print what was mapped, resized, dropped and left at initialisation; or convert between the
official MAE / SIM format and timm's / Hugging Face's (pretrain.checkpoints.convert, torch + timm only).

    python tools/convert_checkpoint.py mae_pretrain_vit_base.pth out/mae_b_d2.pth --to detectron2 --backbone mae_vit_base
    python tools/convert_checkpoint.py convmae_base.pth out/convmae_b_seg.pth --to mmseg --backbone convmae_base
    python tools/convert_checkpoint.py encoder.pth out/toy.pth --to detectron2 --config configs/det/toy_vitdet_tiny.py \
        model.backbone.net.embed_dim=64 model.backbone.net.num_heads=2

    python tools/convert_checkpoint.py model.safetensors out/mae_b.pth --to official     # timm / HF -> official
    python tools/convert_checkpoint.py mae_pretrain_vit_base.pth out/mae_b.safetensors --to timm
    python tools/convert_checkpoint.py mae_pretrain_vit_base.pth out/vit-mae-base --to hf   # a folder
    python tools/convert_checkpoint.py encoder.pth out/tiny --to hf --backbone mae_vit_tiny embed_dim=64 num_heads=2

--to timm / hf: --backbone names the encoder (pretrain/encoders.py) whose head counts the target model
needs (matched on the file's sizes when omitted), key=value pairs override its sizes; ConvMAE is refused
(no timm / Hugging Face model holds it). The output line says how to load the result.
--backbone picks the paper config (tools/train_det.py / tools/train_seg.py names); --config FILE any
config; trailing key=value pairs override it (detectron2 LazyConfig syntax, or mmengine
--cfg-options syntax for mmseg). Outputs: detectron2 ``{'model': {'backbone.net.net.*' | 
'backbone.bottom_up.net.*': ...}}`` (load with DetectionCheckpointer / ``train.init_checkpoint``),
mmseg ``{'state_dict': {'backbone.net.*': ...}}`` (``load_from`` / tools/train_seg.py --weights).
Files that are not pretraining checkpoints, or do not fit the config's backbone, are refused.
"""
from __future__ import annotations

import argparse
import sys

from pretrain.checkpoints import FORMATS as INTEROP_FORMATS
from pretrain.checkpoints import CheckpointError, convert_file, parse_overrides
from transfer.convert import FORMATS as FRAMEWORKS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="pretraining checkpoint (.pth, .pkl, .bin or .safetensors)")
    p.add_argument("output", help="converted checkpoint to write (a folder for --to hf)")
    p.add_argument("--to", required=True, choices=FRAMEWORKS + INTEROP_FORMATS, help="target framework or format")
    p.add_argument("--backbone", help="config of this backbone name (tools/train_det.py / train_seg.py --backbone); "
                                      "--to timm / hf: the encoder the file holds")
    p.add_argument("--config", help="config file (overrides --backbone)")
    p.add_argument("--no-strict", action="store_true", help="allow a checkpoint that lacks some encoder keys")
    p.add_argument("opts", nargs="*", help="key=value config overrides (--to timm / hf: encoder size overrides)")
    args = p.parse_intermixed_args(argv)
    if args.to in FRAMEWORKS and not args.backbone and not args.config:
        p.error("give --backbone NAME or --config FILE (the model the checkpoint will be loaded into)")
    return args


def _mmseg_options(opts: list[str]) -> dict:
    from mmengine.config import DictAction

    ns = argparse.Namespace()
    DictAction(option_strings=[], dest="o")(None, ns, opts)
    return ns.o


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.to in INTEROP_FORMATS:
        return _interop(args)
    try:
        if args.to == "detectron2":
            from transfer.det.configs import config_for_backbone
            from transfer.det.convert import convert_for_detectron2

            config = args.config or config_for_backbone(args.backbone)
            result = convert_for_detectron2(args.input, args.output, config, args.opts, not args.no_strict)
        else:
            from transfer.seg.convert import convert_for_mmseg
            from transfer.seg.train import config_for_backbone

            config = args.config or config_for_backbone(args.backbone)
            options = _mmseg_options(args.opts) if args.opts else None
            result = convert_for_mmseg(args.input, args.output, config, options, not args.no_strict)
    except (CheckpointError, FileNotFoundError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"config:  {config}\n{result.summary()}\nwrote {args.to} checkpoint: {args.output}")
    return 0


def _interop(args: argparse.Namespace) -> int:
    try:
        result = convert_file(args.input, args.output, args.to, args.backbone, parse_overrides(args.opts))
    except (CheckpointError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
