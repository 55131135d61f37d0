"""The command-line rules both transfer tools (tools/train_det.py, tools/train_seg.py) share, as argparse
usage errors (exit 2) before anything is read or built."""
from __future__ import annotations

import argparse

from pretrain.weights import choose_weights


def refuse_contradicting_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, folder_option: str) -> None:
    """A config to run (--backbone or --config); --overwrite not with --resume / --eval-only (it deletes
    the run in ``folder_option``); --weights not with --from-scratch (``pretrain.weights.choose_weights``)."""
    if not args.backbone and not args.config:
        parser.error("give --backbone NAME or --config FILE")
    if args.overwrite and (args.resume or args.eval_only):
        parser.error(f"--overwrite deletes the run in {folder_option}: it cannot go with --resume or --eval-only")
    try:
        choose_weights(args.weights, args.from_scratch, None)
    except ValueError as exc:
        parser.error(str(exc))
