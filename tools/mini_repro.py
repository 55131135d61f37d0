"""The papers' central claim at CPU scale: does masked-image-modeling pretraining on unlabeled images
help Mask R-CNN and UperNet fine-tuning, compared with random initialisation and the same budget?

    python tools/mini_repro.py                       # full toy run (see docs/REPRODUCE.md for timings)
    python tools/mini_repro.py --quick               # a few steps of everything: the pipeline check for CI
    python tools/mini_repro.py --output DIR --no-seg # detection only
    python tools/mini_repro.py --claim --output DIR  # the claim: kNN / linear probe, low-label det / seg, 3 seeds
    python tools/mini_repro.py --claim --output DIR --report-only  # its tables again, from finished runs only

Steps, each by running the project's own command-line tool (printed before it runs, so any row can
be redone by hand):
1. tools/make_toy_data.py: unlabeled images, a COCO-format and an ADE-format toy set;
2. tools/train_mim.py: tiny MAE, SIM (both the 96-d x 2-block ViT) and ConvMAE (32/48/64) on the
   unlabeled images with the toy configs (configs/pretrain/*_tiny_toy.py) -> encoder.pth;
3. tools/train_det.py: the toy Mask R-CNN rows (configs/det/toy_*.py) from each encoder and from
   random initialisation: same architecture, iterations, learning rate, data order and seed;
4. tools/train_seg.py (when mmseg is installed): the toy UperNet rows (configs/seg/toy_*.py, the ViT
   at the pretrained depth of 2 blocks) in the same way;
5. tools/results_table.py's reader: the table (also OUT/table.md, OUT/table.csv).
Finished steps (encoder.pth, results.json, a logged mIoU) are reused; --fresh redoes everything.

--claim runs the claim instead, on the textured world (pretrain/toy_world.py) with 3 seeds: frozen kNN /
linear probe and low-label Mask R-CNN / UperNet fine-tuning (--tasks cls det seg); transfer/claim/pipeline.py
says what it runs.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from transfer.claim.finetune import quick_det_options, quick_seg_options
from transfer.claim.pipeline import add_arguments, run_claim
from transfer.results import (collect_run, format_csv, format_markdown, read_det_metrics, read_seg_metrics,
                              run_iterations)
from transfer.toy_datasets import coco_toy_dataset_spec

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"

# the ViT used by MAE and SIM: mae_vit_tiny's 96-d x 2 blocks x 3 heads (SIM's tiny default is
# 64-d; widened here so both share one architecture and one random-initialisation baseline)
SIM_AS_VIT_TINY = ["model_kwargs.embed_dim=96", "model_kwargs.num_heads=3"]
VIT_DESC = "ViT-tiny (96-d, 2 blocks)"
CONVMAE_DESC = "ConvMAE-tiny (32/48/64)"


@dataclass
class Init:
    """One initialisation of one architecture: the pretraining run that makes it (None: random)."""

    name: str  # random_vit, mae, sim, random_convmae, convmae
    arch: str  # vit | convmae
    pretrain_config: str | None
    pretrain_overrides: tuple[str, ...] = ()


INITS = [
    Init("random_vit", "vit", None),
    Init("mae", "vit", "configs/pretrain/mae_tiny_toy.py"),
    Init("sim", "vit", "configs/pretrain/sim_tiny_toy.py", tuple(SIM_AS_VIT_TINY)),
    Init("random_convmae", "convmae", None),
    Init("convmae", "convmae", "configs/pretrain/convmae_tiny_toy.py"),
]
DET_BACKBONE = {"vit": "mae_vit_tiny", "convmae": "convmae_tiny"}
SEG_BACKBONE = {"vit": "mae_vit_tiny", "convmae": "convmae_tiny"}
# the toy UperNet ViT has 4 blocks; the pretrained tiny ViT has 2: every ViT init uses 2 (random too)
SEG_VIT_AT_PRETRAINED_DEPTH = ["model.backbone.depth=2", "model.backbone.global_blocks=[0,1]",
                               "model.backbone.out_indices=[0,0,1,1]", "optim_wrapper.paramwise_cfg.num_layers=2"]


def run_tool(script: str, args: list[str], log: Path) -> None:
    """Run tools/<script> with ``args`` in a fresh process (as a user would), output to ``log``."""
    cmd = [sys.executable, str(TOOLS / script), *args]
    print(f"$ {' '.join(shlex.quote(c) for c in cmd[1:])}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    print(f"  ({time.time() - t0:.0f} s, log {log})", flush=True)
    if proc.returncode != 0:
        tail = "".join(open(log).readlines()[-30:])
        raise RuntimeError(f"{script} failed (exit {proc.returncode}); last lines of {log}:\n{tail}")


def mmseg_available() -> bool:
    return importlib.util.find_spec("mmseg") is not None and importlib.util.find_spec("mmcv") is not None


def write_info(run_dir: Path, **info) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run_info.json").write_text(json.dumps(info, indent=1))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="output/mini_repro", help="everything goes here")
    p.add_argument("--quick", action="store_true", help="a few steps of each stage (pipeline check, minutes)")
    p.add_argument("--no-seg", action="store_true", help="skip the UperNet part")
    p.add_argument("--no-det", action="store_true", help="skip the Mask R-CNN part")
    p.add_argument("--only", nargs="+", choices=[i.name for i in INITS], help="run these initialisations only")
    p.add_argument("--seed", type=int, default=0, help="fine-tuning seed, the same for every initialisation")
    p.add_argument("--fresh", action="store_true", help="redo finished steps")
    add_arguments(p)
    args = p.parse_args(argv)
    if args.report_only and (args.fresh or not args.claim):
        p.error("--report-only rebuilds the tables of --claim from finished runs: it needs --claim, not --fresh")
    return args


def make_data(args, data: Path, out: Path) -> None:
    """Step 1: the toy sets (unlabeled images, COCO-format, ADE-format)."""
    if args.fresh or not (data / "ade" / "images" / "validation").is_dir():
        sizes = ["--num-train", "16", "--num-val", "4"] if args.quick else []
        run_tool("make_toy_data.py", ["--out", str(data), *sizes], out / "logs" / "data.log")


def pretrain_all(args, inits: list[Init], data: Path, out: Path) -> dict[str, str | None]:
    """Step 2: pretrain each initialisation's encoder; {init name: encoder.pth or None (random init)}."""
    pre_overrides = ["epochs=1", "warmup_epochs=0", "vis_every_epochs=0"] if args.quick else []
    encoders: dict[str, str | None] = {}
    for init in inits:
        if init.pretrain_config is None:
            encoders[init.name] = None
            continue
        run_dir = out / "pretrain" / init.name
        encoder = run_dir / "encoder.pth"
        if args.fresh or not encoder.is_file():
            run_tool("train_mim.py", ["--config", init.pretrain_config, "--data", str(data / "images"),
                                     "--output", str(run_dir), "--overwrite", *pre_overrides,
                                     *init.pretrain_overrides],
                     out / "logs" / f"pretrain_{init.name}.log")
        encoders[init.name] = str(encoder)
    return encoders


def pretraining_desc(init: Init, out: Path) -> str:
    if init.pretrain_config is None:
        return "random init"
    cfg = json.loads((out / "pretrain" / init.name / "config.json").read_text())
    iters = [json.loads(line) for line in open(out / "pretrain" / init.name / "log.jsonl") if line.startswith("{")]
    return f"{init.name.upper()} toy, {iters[-1]['iteration'] if iters else '?'} it x {cfg['batch_size']}"


def finetune_det(args, inits: list[Init], encoders: dict, data: Path, out: Path) -> list[Path]:
    """Step 3: the toy Mask R-CNN from each initialisation."""
    dataset = coco_toy_dataset_spec(data / "coco")
    # quick mode: 4 iterations; the full run keeps the toy rows' own schedule (configs/det/toy_*.py)
    det_opts = [f"train.seed={args.seed}", *(quick_det_options() if args.quick else [])]
    run_dirs = []
    for init in inits:
        run_dir = out / "det" / init.name
        if args.fresh or read_det_metrics(run_dir) is None:
            weights = ["--weights", encoders[init.name]] if encoders[init.name] else []
            run_tool("train_det.py", ["--backbone", DET_BACKBONE[init.arch], "--dataset", dataset,
                                      "--output", str(run_dir), "--overwrite", *weights, *det_opts],
                     out / "logs" / f"det_{init.name}.log")
        write_info(run_dir, row="mini_repro_det", backbone=VIT_DESC if init.arch == "vit" else CONVMAE_DESC,
                   pretraining=pretraining_desc(init, out), schedule=f"toy Mask R-CNN, {run_iterations(run_dir) or '?'} it x 4 img")
        run_dirs.append(run_dir)
    return run_dirs


def finetune_seg(args, inits: list[Init], encoders: dict, data: Path, out: Path) -> list[Path]:
    """Step 4: the toy UperNet from each initialisation."""
    # quick mode: 4 iterations; the full run keeps the toy rows' own schedule (configs/seg/toy_*.py)
    run_dirs = []
    for init in inits:
        run_dir = out / "seg" / init.name
        if args.fresh or read_seg_metrics(run_dir) is None:
            opts = [f"randomness.seed={args.seed}"]
            if init.arch == "vit":
                opts += SEG_VIT_AT_PRETRAINED_DEPTH
            if args.quick:
                opts += quick_seg_options()
            weights = ["--weights", encoders[init.name]] if encoders[init.name] else []
            run_tool("train_seg.py", ["--backbone", SEG_BACKBONE[init.arch], "--dataset", str(data / "ade"),
                                      "--work-dir", str(run_dir), "--overwrite", *weights,
                                      "--cfg-options", *opts],
                     out / "logs" / f"seg_{init.name}.log")
        write_info(run_dir, row="mini_repro_seg", backbone=VIT_DESC if init.arch == "vit" else CONVMAE_DESC,
                   pretraining=pretraining_desc(init, out), schedule=f"toy UperNet, {run_iterations(run_dir) or '?'} it")
        run_dirs.append(run_dir)
    return run_dirs


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    out = Path(args.output).resolve()
    data = out / "data"
    if args.claim:
        return run_claim(args, run_tool, out)
    inits = [i for i in INITS if not args.only or i.name in args.only]
    t_start = time.time()
    make_data(args, data, out)
    encoders = pretrain_all(args, inits, data, out)
    run_dirs = [] if args.no_det else finetune_det(args, inits, encoders, data, out)
    if not args.no_seg and not mmseg_available():
        print("segmentation skipped: mmseg / mmcv are not installed in this environment", flush=True)
    elif not args.no_seg:
        run_dirs += finetune_seg(args, inits, encoders, data, out)
    # 5. the table
    rows = [collect_run(d, paper={}) for d in run_dirs]
    table, table_csv = format_markdown(rows), format_csv(rows)
    (out / "table.md").write_text(table + "\n")
    (out / "table.csv").write_text(table_csv)
    print(f"\nmini reproduction ({'quick' if args.quick else 'full'} mode, {time.time() - t_start:.0f} s), "
          f"{out}:\n\n{table}\n", flush=True)
    for line in compare_to_random(rows):
        print(line)
    return rows


def compare_to_random(rows: list[dict]) -> list[str]:
    """'MAE vs random (ViT-tiny, det): AP_box +1.2, AP_mask -0.3' lines."""
    lines = []
    for task, metrics in (("det", ("AP_box", "AP_mask")), ("seg", ("mIoU",))):
        by_name = {Path(r["run"]).name: r for r in rows if Path(r["run"]).parent.name == task}
        for init in INITS:
            base = by_name.get(f"random_{init.arch}")
            if init.pretrain_config is None or init.name not in by_name or base is None:
                continue
            diffs = []
            for m in metrics:
                a, b = by_name[init.name][m], base[m]
                diffs.append(f"{m} {a - b:+.1f}" if a is not None and b is not None else f"{m} -")
            lines.append(f"{init.name.upper()} vs random init ({task}, same budget): {', '.join(diffs)}")
    return lines


if __name__ == "__main__":
    main()
