"""Convert a pretraining checkpoint (official MAE / ConvMAE / SIM release, or an encoder.pth of
tools/train_mim.py) into a checkpoint that detectron2 or mmseg loads into the backbone of one of our
configs, and print what was mapped, resized, dropped and left at initialisation.

    python tools/convert_checkpoint.py mae_pretrain_vit_base.pth out/mae_b_d2.pth --to detectron2 --backbone mae_vit_base
    python tools/convert_checkpoint.py convmae_base.pth out/convmae_b_seg.pth --to mmseg --backbone convmae_base
    python tools/convert_checkpoint.py encoder.pth out/toy.pth --to detectron2 --config configs/det/toy_vitdet_tiny.py \
        model.backbone.net.embed_dim=64 model.backbone.net.num_heads=2

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

from pretrain.checkpoint_io import CheckpointError
from transfer.convert import FORMATS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="pretraining checkpoint (.pth)")
    p.add_argument("output", help="converted checkpoint to write")
    p.add_argument("--to", required=True, choices=FORMATS, help="target framework")
    p.add_argument("--backbone", help="config of this backbone name (tools/train_det.py / train_seg.py --backbone)")
    p.add_argument("--config", help="config file (overrides --backbone)")
    p.add_argument("--no-strict", action="store_true", help="allow a checkpoint that lacks some encoder keys")
    p.add_argument("opts", nargs="*", help="key=value config overrides")
    args = p.parse_intermixed_args(argv)
    if not args.backbone and not args.config:
        p.error("give --backbone NAME or --config FILE (the model the checkpoint will be loaded into)")
    return args


def _mmseg_options(opts: list[str]) -> dict:
    from mmengine.config import DictAction

    ns = argparse.Namespace()
    DictAction(option_strings=[], dest="o")(None, ns, opts)
    return ns.o


def main(argv=None) -> int:
    args = parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
