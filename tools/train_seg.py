"""UperNet transfer on mmsegmentation: train or evaluate a paper config with one of our backbones.

    python tools/train_seg.py --backbone mae_vit_base \
        --dataset data/ade/ADEChallengeData2016 --launcher pytorch          # under torchrun, 8 GPUs
    torchrun --nproc_per_node 2 tools/train_seg.py --backbone mae_vit_tiny --dataset toy \
        --launcher pytorch                                                   # CPU: gloo, per-process BN
    python tools/train_seg.py --backbone mae_vit_tiny --dataset toy              # CPU toy run
    python tools/train_seg.py --backbone mae_vit_tiny --dataset toy --eval-only  # last checkpoint of the work dir
    python tools/train_seg.py --backbone convmae_base --resume --work-dir work_dirs/seg/convmae
    python tools/train_seg.py --backbone mae_vit_tiny --dataset toy --cfg-options train_cfg.max_iters=100

--backbone picks the paper config (configs/seg/); --config FILE runs any mmengine config instead.
Weights: each paper row starts from its paper's checkpoint, named in its config (mae_pretrain_vit_base,
sim_vit_base, convmae_base; downloaded once); --weights NAME|PATH picks another: an official name, a
pretraining checkpoint (official MAE / ConvMAE / SIM or ours, or a ViT backbone file in mmseg's names
as mmseg's beit2mmseg converter writes; loaded into the backbone with position-table resizing and a key
report) or a whole segmentor checkpoint (this tool's, or mmseg's
released MAE UperNet files; loaded strictly); --from-scratch starts a paper row without weights.
Toy rows start from random initialisation. The log says which weights were loaded.
--dataset: ade20k (the config's data root), toy (datasets/toy/ade, generated when missing) or the
path of a folder in mmseg's ADE20K layout. Prints the final mIoU / mAcc / aAcc.
N processes x batch B train as 1 process x batch B x `--cfg-options optim_wrapper.accumulative_counts=N`
(same images, augmentation and dropout per micro-batch; transfer/seg/distributed.py says what differs).
"""
from __future__ import annotations

import argparse
import json
import sys

from mmengine.config import DictAction

from pretrain.checkpoints import CheckpointError
from pretrain.run_dir import RunDirError
from pretrain.weights import WeightsNotFoundError
from transfer.run_flags import refuse_contradicting_flags, user_error
from transfer.seg.run_options import UnknownOptionError
from transfer.seg.train import BACKBONE_CONFIGS, build_config, config_for_backbone, run

# how a user builds the backbone a checkpoint was trained with (named when a checkpoint lacks blocks)
SIZES_HINT = ("--cfg-options model.backbone.depth=... / embed_dim=..., with out_indices and "
              "optim_wrapper.paramwise_cfg.num_layers to match")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", choices=sorted(BACKBONE_CONFIGS), help="picks the paper config for this backbone")
    p.add_argument("--config", help="an mmengine config file (overrides --backbone's config)")
    p.add_argument("--weights", default="", help="official checkpoint name or file: a pretraining checkpoint of "
                   "the backbone, or a segmentor checkpoint (default: the config's own checkpoint)")
    p.add_argument("--from-scratch", action="store_true", help="start the backbone from random initialisation "
                   "instead of the checkpoint the config names")
    p.add_argument("--allow-partial-weights", action="store_true", help="accept a pretraining checkpoint that "
                   "leaves backbone blocks at init (e.g. a shallower encoder); the log lists them")
    p.add_argument("--dataset", default="ade20k", help="ade20k | toy | PATH (mmseg's ADE20K layout)")
    p.add_argument("--work-dir", help="logs and checkpoints (default: work_dirs/seg/<config name>)")
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint in the work dir")
    p.add_argument("--overwrite", action="store_true", help="delete the run already in the work dir and start "
                   "again (without --resume or --overwrite a used work dir is refused)")
    p.add_argument("--eval-only", action="store_true", help="evaluate --weights (or the work dir's last checkpoint)")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local-rank", "--local_rank", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--cfg-options", nargs="+", action=DictAction, help="key=value overrides of the config")
    args = p.parse_args(argv)
    refuse_contradicting_flags(p, args, "--work-dir")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        cfg = build_config(
            args.config or config_for_backbone(args.backbone), dataset=args.dataset, weights=args.weights,
            work_dir=args.work_dir, resume=args.resume, eval_only=args.eval_only, launcher=args.launcher,
            cfg_options=args.cfg_options, from_scratch=args.from_scratch,
            allow_partial_weights=args.allow_partial_weights,
        )
        metrics = run(cfg, eval_only=args.eval_only, overwrite=args.overwrite)
    except (CheckpointError, RunDirError, UnknownOptionError, WeightsNotFoundError) as exc:
        # bad --weights / checkpoint; a used or busy --work-dir; a misspelled --cfg-options key
        sys.exit(f"error: {user_error(exc, SIZES_HINT)}")
    print(f"final {'test' if args.eval_only else 'validation'} metrics: {json.dumps(metrics)}")
    return metrics


if __name__ == "__main__":
    main()
