"""The claim's low-label fine-tuning (tools/mini_repro.py --claim --tasks det seg): Mask R-CNN box / mask AP
and UperNet mIoU after fine-tuning on a small labelled set of the textured world, from random
initialisation and from each method's pretrained encoder, one run per seed.

Per task and architecture one config file (configs/det/claim_*.py, configs/seg/claim_*.py) holds every
setting; a run adds only its seed and, for a pretrained initialisation, ``--weights`` (the encoder of the
pretraining run of the same seed). The random-init row of the ViT serves MAE and SIM (the same
architecture: the 96-d x 2-block ViT with 8-px patches). The seed sets the pretrained weights, the
initial weights of everything the checkpoint does not hold and the data order.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from transfer.results import read_det_metrics, read_seg_metrics, run_iterations
from transfer.toy_datasets import coco_toy_dataset_spec

RunTool = Callable[[str, list[str], Path], None]  # tools/<script>, its arguments, the log file
FINETUNE_TASKS = ("det", "seg")
ARCH = {"mae": "vit", "sim": "vit", "convmae": "convmae"}  # the claim's pretraining method -> architecture
BACKBONE = {"vit": "mae_vit_tiny", "convmae": "convmae_tiny"}
CONFIGS = {("det", "vit"): "configs/det/claim_vitdet_tiny.py", ("det", "convmae"): "configs/det/claim_convmae_tiny.py",
           ("seg", "vit"): "configs/seg/claim_upernet_vit_tiny.py",
           ("seg", "convmae"): "configs/seg/claim_upernet_convmae_tiny.py"}
DATA_SEED = 100  # the fine-tuning sets' own random stream (the pool and the labelled set use seed 0)
FT_ITERS = 480  # the claim configs' own schedule length (tests/test_claim.py checks both files agree)
QUICK_ITERS = 4  # --quick: a pipeline check
IMAGE_SIZE = 96  # see configs/det/claim_vitdet_tiny.py for why


@dataclass(frozen=True)
class FineTuneInit:
    """One initialisation of the fine-tuning table: random (``method`` None) or a method's encoder."""

    name: str  # random_vit, mae, sim, random_convmae, convmae
    arch: str
    method: str | None

    def weights(self, out: Path, seed: int) -> list[str]:
        """``--weights`` of the tools: none for random initialisation."""
        return [] if self.method is None else ["--weights", str(out / "pretrain" / f"{self.method}_s{seed}" / "encoder.pth")]


def finetune_inits(methods: list[str]) -> list[FineTuneInit]:
    """Random init of each architecture the methods use, then each method."""
    randoms = [FineTuneInit(f"random_{arch}", arch, None) for arch in dict.fromkeys(ARCH[m] for m in methods)]
    return randoms + [FineTuneInit(m, ARCH[m], m) for m in methods]


def finetune_pairs(methods: list[str]) -> list[tuple[str, str]]:
    """(pretrained, random) names of the fine-tuning table."""
    return [(m, f"random_{ARCH[m]}") for m in methods]


def add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    """The fine-tuning options of tools/mini_repro.py --claim."""
    p.add_argument("--tasks", nargs="+", choices=("cls", *FINETUNE_TASKS), default=["cls", *FINETUNE_TASKS],
                   help="claim: frozen kNN / linear probe (cls), Mask R-CNN (det), UperNet (seg)")
    p.add_argument("--ft-train", type=int, default=64, help="claim: labelled det / seg training images")
    p.add_argument("--ft-val", type=int, default=500, help="claim: det / seg validation images")
    p.add_argument("--ft-iters", type=int, default=FT_ITERS,
                   help="claim: det / seg training iterations (the configs' steps and warm-up scale with it)")


def make_finetune_data(args: argparse.Namespace, run_tool: RunTool, data: Path, out: Path) -> None:
    """The COCO-format and ADE-format sets of the textured world -> data/coco, data/ade."""
    if args.fresh or not (data / "ade" / "images" / "validation").is_dir() or not (data / "coco" / "val").is_dir():
        train, val = (8, 8) if args.quick else (args.ft_train, args.ft_val)
        run_tool("make_toy_data.py", ["--out", str(data), "--world", "textured", "--only", "coco", "ade",
                                      "--size", str(IMAGE_SIZE), "--num-train", str(train), "--num-val", str(val),
                                      "--seed", str(DATA_SEED)], out / "logs" / "data_finetune.log")


def det_schedule_options(n: int) -> list[str]:
    """detectron2 overrides that set a claim config's schedule to ``n`` iterations: steps at 80 % and 93 %,
    20 warm-up iterations, evaluated and saved at the end, as the file writes it for FT_ITERS."""
    return [f"train.max_iter={n}", f"train.eval_period={n}", f"train.checkpointer.period={n}",
            f"lr_multiplier.scheduler.milestones=[{int(0.8 * n)},{int(0.93 * n)}]",
            f"lr_multiplier.scheduler.num_updates={n}", f"lr_multiplier.warmup_length={20 / n}"]


def seg_schedule_options(n: int) -> list[str]:
    """mmengine overrides that set a claim config's schedule to ``n`` iterations: 20 warm-up iterations, then
    the poly decay to 0 at ``n``, evaluated and saved at the end, as the file writes it for FT_ITERS."""
    return [f"train_cfg.max_iters={n}", f"train_cfg.val_interval={n}", f"default_hooks.checkpoint.interval={n}",
            f"param_scheduler.1.end={n}"]


def quick_det_options(n: int = QUICK_ITERS) -> list[str]:
    """detectron2 overrides of a pipeline check: ``n`` iterations, evaluated at the end."""
    return [f"train.max_iter={n}", f"train.eval_period={n}", f"train.checkpointer.period={n}", "train.log_period=1",
            f"lr_multiplier.scheduler.milestones=[{n - 2},{n - 1}]", f"lr_multiplier.scheduler.num_updates={n}"]


def quick_seg_options(n: int = QUICK_ITERS) -> list[str]:
    """mmengine overrides of a pipeline check: ``n`` iterations, evaluated at the end."""
    return [f"train_cfg.max_iters={n}", f"train_cfg.val_interval={n}", f"default_hooks.checkpoint.interval={n}",
            "default_hooks.logger.interval=1"]


def run_dir(out: Path, task: str, init: FineTuneInit, seed: int) -> Path:
    return out / task / f"{init.name}_s{seed}"


def read_metrics(task: str, path: Path) -> dict[str, float] | None:
    return read_det_metrics(path) if task == "det" else read_seg_metrics(path)


def tool_arguments(task: str, init: FineTuneInit, seed: int, data: Path, out: Path, quick: bool,
                   iters: int = FT_ITERS) -> tuple[str, list[str]]:
    """(tool script, its arguments) of one fine-tuning run of ``iters`` iterations (4 when ``quick``)."""
    common = ["--backbone", BACKBONE[init.arch], "--config", CONFIGS[task, init.arch], "--overwrite",
              *init.weights(out, seed)]
    path = run_dir(out, task, init, seed)
    if task == "det":
        dataset = coco_toy_dataset_spec(data / "coco")
        options = [f"train.seed={seed}", *(quick_det_options() if quick else det_schedule_options(iters))]
        return "train_det.py", [*common, "--dataset", dataset, "--output", str(path), *options]
    options = [f"randomness.seed={seed}", *(quick_seg_options() if quick else seg_schedule_options(iters))]
    return "train_seg.py", [*common, "--dataset", str(data / "ade"), "--work-dir", str(path), "--cfg-options", *options]


def finetune(args: argparse.Namespace, run_tool: RunTool, methods: list[str], data: Path, out: Path) -> None:
    """Every requested fine-tuning task, initialisation and seed whose metrics are not there yet."""
    for task in (t for t in FINETUNE_TASKS if t in args.tasks):
        for seed in args.seeds:  # seed by seed: a partial run still pairs random and pretrained
            for init in finetune_inits(methods):
                path = run_dir(out, task, init, seed)
                if args.fresh or read_metrics(task, path) is None:
                    script, arguments = tool_arguments(task, init, seed, data, out, args.quick, args.ft_iters)
                    run_tool(script, arguments, out / "logs" / f"{task}_{init.name}_s{seed}.log")
                else:
                    check_reused_length(path, QUICK_ITERS if args.quick else args.ft_iters)


def check_reused_length(path: Path, iters: int) -> None:
    """Refuse to reuse a finished run of another schedule length: its metrics would join a table of
    ``iters``-iteration runs."""
    found = run_iterations(path)
    if found != iters:
        raise ValueError(f"{path} holds a finished {found}-iteration run, but this invocation trains {iters} "
                         "iterations (--ft-iters / --quick): give another --output, or --fresh to retrain it")


def collect(methods: list[str], seeds: list[int], out: Path) -> dict[str, dict[int, dict[str, float]]]:
    """The metrics of every finished det / seg run of these methods and seeds (whichever invocation ran
    it): {init: {seed: {'AP_box', 'AP_mask', 'mIoU'}}}; runs not there are left out."""
    results: dict[str, dict[int, dict[str, float]]] = {}
    for init in finetune_inits(methods):
        for seed in seeds:
            for task in FINETUNE_TASKS:
                metrics = read_metrics(task, run_dir(out, task, init, seed))
                if metrics:
                    results.setdefault(init.name, {}).setdefault(seed, {}).update(metrics)
    return results
