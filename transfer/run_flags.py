"""The command-line rules the transfer tools (tools/train_det.py, tools/train_seg.py, tools/train_cls.py) share:
argparse usage errors (exit 2) before anything is read or built, and the flags named in error messages."""
from __future__ import annotations

import argparse

from pretrain.checkpoints import PartialLoadError
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


PARTIAL_WEIGHTS_FLAG = "--allow-partial-weights"


def user_error(exc: BaseException, sizes_hint: str = "") -> str:
    """The text a tool prints for a user error: the message, and for a checkpoint that would leave
    parameters at init (``PartialLoadError``) what to do about it: build the model the checkpoint was
    trained with (``sizes_hint``: the tool's way to do that) or pass the flag that accepts it."""
    if not isinstance(exc, PartialLoadError):
        return str(exc)
    build = f"build the backbone the checkpoint was trained with ({sizes_hint}), or " if sizes_hint else ""
    return (f"{exc} To use it anyway: {build}pass {PARTIAL_WEIGHTS_FLAG} to train with the parameters it lacks "
            "at their initial values.")
