"""UperNet fine-tuning and evaluation on mmengine's Runner: config selection, dataset and weights
resolution, then ``Runner.train()`` / ``Runner.test()`` unchanged (logs, checkpoints, launchers,
mIoU through mmseg's ``IoUMetric``). ``tools/train_seg.py`` is the command line over this module.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import zipfile
from contextlib import nullcontext
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from pretrain.checkpoints import CheckpointError, CheckpointKind, expect_kind, read_checkpoint
from pretrain.run_dir import claim_run_dir, is_main_process
import transfer.seg  # noqa: F401  (registers our modules, installs the weights_only checkpoint loader)
from transfer.seg import distributed
from transfer.seg.atomic_backend import use_atomic_checkpoints
from transfer.seg.backbones import BACKBONE_KINDS
from transfer.config_table import ConfigTable
from transfer.framework_warnings import FrameworkLogLines
from transfer.rank_agreement import check_ranks_agree
from transfer.seg.run_options import apply_weights, check_cfg_options

SEG_CONFIGS = ConfigTable("seg")
CONFIG_DIR = SEG_CONFIGS.folder
BACKBONE_CONFIGS = SEG_CONFIGS.files
config_for_backbone = SEG_CONFIGS.path
TOY_ROOT = os.path.join("datasets", "toy", "ade")
ADE_SPLITS = ("images/training", "annotations/training", "images/validation", "annotations/validation")


def _set_data_root(cfg: Config, root: str) -> None:
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(loader) is not None:
            cfg[loader].dataset.data_root = root


def resolve_dataset(cfg: Config, dataset: str, eval_only: bool) -> str:
    """Point the config's dataloaders at ``dataset`` and check the files are there.

    ``ade20k``: the config's data_root; ``toy``: datasets/toy/ade (written if missing); otherwise a
    folder in mmseg's ADE20K layout. Returns the data root."""
    if dataset == "toy":
        root = TOY_ROOT
        if not os.path.isdir(os.path.join(root, "images", "training")):
            from transfer.toy_datasets import write_ade_toy

            print_log(f"writing the ADE-format toy set to {root} (tools/make_toy_data.py --only ade)", logger="current")
            # written aside and renamed: the processes of a distributed run may all write it at once
            tmp = f"{root}.tmp-{os.getpid()}"
            write_ade_toy(tmp)
            try:
                os.rename(tmp, root)
            except OSError:  # another process renamed its copy first (the same files)
                shutil.rmtree(tmp)
        if cfg.train_dataloader.dataset.get("type") == "ADE20KDataset":
            raise ValueError(
                "--dataset toy needs a config with the toy classes (configs/seg/toy_*.py, e.g. --backbone mae_vit_tiny); "
                "the ADE20K paper configs expect 150 classes"
            )
    else:
        root = cfg.train_dataloader.dataset.data_root if dataset == "ade20k" else dataset
    needed = ADE_SPLITS[2:] if eval_only else ADE_SPLITS
    missing = [d for d in needed if not os.path.isdir(os.path.join(root, d))]
    if missing:
        raise FileNotFoundError(
            f"dataset root {os.path.abspath(root)!r} lacks {', '.join(missing)}. Expected mmseg's ADE20K layout "
            "(ADEChallengeData2016: images/{training,validation}/*.jpg, annotations/{training,validation}/*.png; "
            "see mmsegmentation docs/en/user_guides/2_dataset_prepare.md). Pass --dataset "
            "/path/to/ADEChallengeData2016, or --dataset toy for the generated toy set."
        )
    _set_data_root(cfg, root)
    return root


def is_segmentor_checkpoint(path: str) -> bool:
    """True for a checkpoint of a whole segmentor (mmseg), False for a checkpoint of the backbone alone
    (official MAE / ConvMAE / SIM pretraining files or ours, or a ViT backbone in mmseg's names such as
    mmseg's beit2mmseg writes); any other file is refused (CheckpointError saying what to do, e.g. export a
    training checkpoint's encoder first)."""
    kinds = [CheckpointKind.MMSEG] + BACKBONE_KINDS
    purpose = ("a pretraining checkpoint of the backbone (MAE / ConvMAE / SIM, or a ViT backbone in mmseg's names) "
               "or an mmseg segmentor checkpoint")
    state = read_checkpoint(path, mmap=True)  # a look at the keys: mmengine or our loader reads the file after
    return expect_kind(state, path, kinds, purpose) is CheckpointKind.MMSEG


def _no_amp_without_cuda(cfg: Config) -> None:
    wrapper = cfg.optim_wrapper
    if wrapper.get("type") == "AmpOptimWrapper" and not torch.cuda.is_available():
        print_log("no CUDA device: AmpOptimWrapper replaced by OptimWrapper (fp32)", logger="current")
        wrapper.type = "OptimWrapper"
        wrapper.pop("dtype", None)
        wrapper.pop("loss_scale", None)


def _ensure_strict_loading(cfg: Config) -> None:
    """Whole-segmentor checkpoints load strictly also for configs that do not list the hook."""
    hooks = cfg.get("custom_hooks") or []
    if not any(h.get("type") == "StrictSegmentorLoadHook" for h in hooks):
        cfg.custom_hooks = list(hooks) + [dict(type="StrictSegmentorLoadHook")]


def _announce_weights(cfg: Config) -> None:
    for line in (cfg.get("weights_summary"), cfg.get("resume_note")):
        if line:
            print_log(f"{'=' * 20} {line} {'=' * 20}", logger="current", level=logging.WARNING)


CHECKPOINT_FILE = re.compile(r"^(iter|epoch)_(\d+)\.pth$")  # what mmengine's CheckpointHook writes


def _is_complete(path: str) -> bool:
    """A whole torch zip archive (its end record is written last; a truncated file lacks it)."""
    return os.path.isfile(path) and zipfile.is_zipfile(path)


def _newest_complete_checkpoint(work_dir: str) -> str | None:
    found = []
    for name in os.listdir(work_dir) if os.path.isdir(work_dir) else []:
        path = os.path.join(work_dir, name)
        if (match := CHECKPOINT_FILE.match(name)) and _is_complete(path):
            found.append((int(match.group(2)), os.path.getmtime(path), path))
    return max(found)[2] if found else None


def checkpoint_to_resume(work_dir: str, flag: str = "--resume") -> tuple[str | None, str]:
    """(the checkpoint a run in ``work_dir`` continues from, a log line when it is not what mmengine's
    ``last_checkpoint`` names). mmengine writes ``last_checkpoint`` with a plain ``open`` (the checkpoints
    themselves atomically, ``atomic_backend``): when it is empty, unreadable, or names a missing or
    incomplete file, the newest complete ``iter_N.pth`` / ``epoch_N.pth`` of the work dir is used, and
    when there is none CheckpointError says so. No ``last_checkpoint`` and no checkpoint: (None, '')
    (a new run)."""
    last = os.path.join(work_dir, "last_checkpoint")
    problem = "does not exist"
    if os.path.exists(last):
        try:
            named = Path(last).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            named, problem = "", f"is unreadable ({type(exc).__name__}: {exc})"
        else:
            problem = "is empty (a run killed while writing it?)" if not named else ""
        if named and not os.path.isfile(named):
            problem = f"names {named}, which does not exist"
        elif named and not _is_complete(named):
            problem = f"names {named}, which is incomplete (not a whole torch zip archive)"
        if not problem:
            return named, ""
    newest = _newest_complete_checkpoint(work_dir)
    if newest is not None:
        return newest, f"CHECKPOINT: {last} {problem}; {flag} uses {newest}, the newest complete checkpoint there"
    if problem == "does not exist":
        return None, ""
    way_out = ("pass --weights CKPT" if flag == "--eval-only" else
               "start the run again with --overwrite, or pass --weights CKPT to continue from another checkpoint")
    raise CheckpointError(
        f"{flag}: {last} {problem}, and {work_dir} holds no complete iter_*.pth / epoch_*.pth checkpoint to "
        f"continue from: {way_out}."
    )


def _resume_from_work_dir(cfg: Config, weights: str) -> None:
    """--resume continues the run in the work dir (its last checkpoint: weights, optimizer, iteration),
    as train_det does; --weights only says where a run that has no checkpoint yet starts from. (mmengine
    alone would resume from a --weights segmentor file: its optimizer state and iteration count, e.g.
    160000 in mmseg's released models, which ends the run before it starts.)"""
    path, note = checkpoint_to_resume(cfg.work_dir)
    if path:
        if weights:
            note = (note + "; " if note else "") + f"--resume: the run in {cfg.work_dir} goes on from {path}; " \
                f"--weights {weights} is not used"
        cfg.load_from, cfg.resume, cfg.resume_note = path, True, note
    else:  # nothing to resume: a new run, from --weights (as initial weights) or the config's checkpoint
        cfg.resume, cfg.resume_note = False, f"--resume: {cfg.work_dir} holds no checkpoint yet; a new run starts"


def build_config(
    config: str, dataset: str = "ade20k", weights: str = "", work_dir: str | None = None, resume: bool = False,
    eval_only: bool = False, launcher: str = "none", cfg_options: dict | None = None,
    from_scratch: bool = False, allow_partial_weights: bool = False,
) -> Config:
    """The Runner config of a run (see ``tools/train_seg.py`` for the meaning of the arguments)."""
    cfg = Config.fromfile(config)
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or os.path.join("work_dirs", "seg", Path(config).stem)
    resolve_dataset(cfg, dataset, eval_only)
    _no_amp_without_cuda(cfg)
    _ensure_strict_loading(cfg)
    cfg.weights_summary = apply_weights(cfg, is_segmentor_checkpoint, weights, from_scratch, allow_partial_weights,
                                        eval_only)
    cfg.resume, cfg.resume_requested = False, resume  # the latter: the work dir may hold a run (claim_run_dir)
    if resume:
        _resume_from_work_dir(cfg, weights)
    elif eval_only and not cfg.get("load_from"):
        # the work dir's last checkpoint, also when mmengine's last_checkpoint pointer is broken
        cfg.load_from, cfg.resume_note = checkpoint_to_resume(cfg.work_dir, "--eval-only")
        if not cfg.load_from:
            raise FileNotFoundError(
                f"--eval-only needs a segmentor checkpoint: pass --weights CKPT, or a --work-dir holding one "
                f"(no {os.path.join(cfg.work_dir, 'last_checkpoint')})"
            )
    _announce_weights(cfg)
    distributed.configure(cfg)  # N processes x batch B == 1 x B x accumulation N; gloo on CPU (distributed.py)
    use_atomic_checkpoints(cfg)  # checkpoints never visible half-written (transfer/seg/atomic_backend.py)
    return cfg


def run(cfg: Config, eval_only: bool = False, overwrite: bool = False) -> dict:
    """Train (then the final validation) or evaluate; returns the last validation / test metrics.
    The main process first claims the work dir (``pretrain.run_dir``): one that holds another run is
    refused unless resuming, evaluating or ``overwrite`` (deletes it), and so is one in use right now."""
    claim = claim_run_dir(cfg.work_dir, resume=cfg.resume_requested or eval_only, overwrite=overwrite,
                          option="--work-dir") if is_main_process() else nullcontext()
    distributed.init_cpu_process_group(cfg)
    with claim:
        runner = Runner.from_cfg(cfg)
        runner.logger.addFilter(FrameworkLogLines())  # mmengine's own deprecation lines: nothing to act on
        _announce_weights(cfg)  # again, into the run's log file
        if eval_only:
            return dict(runner.test())
        runner.train()
        check_ranks_agree(runner.model, lambda line: print_log(line, logger="current"))
    hub = runner.message_hub
    timers = ("val/time", "val/data_time")
    return {key[len("val/"):]: hub.get_scalar(key).current()
            for key in hub.log_scalars if key.startswith("val/") and key not in timers}
