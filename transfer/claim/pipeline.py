"""``tools/mini_repro.py --claim``: the papers' claim at CPU scale (frozen features and low-label fine-tuning).

1. tools/make_toy_data.py --world textured: an unlabelled pool and a labelled set (train/val, balanced
   subsets of --labels images) of pretrain/toy_world.py;
2. tools/train_mim.py: tiny MAE, SIM (widened to MAE's ViT-tiny) and ConvMAE on the pool, one run per
   seed (the seed sets the initial weights and the data order), the kNN monitor on the labelled set;
3. per seed, each method's random initialisation (its pretraining run's initial weights: the same
   model, config and seed) and its pretrained weights: kNN and linear-probe top-1 on frozen features
   (transfer/claim/frozen_eval.py) for each label budget;
4. per seed, random initialisation and each method's encoder fine-tuned on the small labelled COCO- and
   ADE-format sets of the same world: Mask R-CNN box / mask AP and UperNet mIoU (transfer/claim/finetune.py);
5. the tables (mean, std, every seed; the 2-std verdict) and the plots.
--tasks picks steps 3 (cls) and 4 (det, seg); the tables list every finished run of the asked methods and
seeds, so the det and seg parts may run as parallel invocations on the same --output. A step whose
output exists is skipped (--fresh redoes it); with --report-only a step whose output is missing is an error
(UnfinishedStep) instead of being run: the tables and plots are rebuilt from finished runs only.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

from pretrain.config import load_config
from transfer.claim import finetune as ft
from transfer.claim.frozen_eval import ALL_LABELS, evaluate
from transfer.claim.report import Results, markdown_table, plot_curves, plot_seeds

ROOT = Path(__file__).resolve().parents[2]
RunTool = ft.RunTool


@dataclass(frozen=True)
class ClaimMethod:
    """A pretraining method of the claim: its toy config and the overrides that set its architecture."""

    name: str
    config: str  # relative to the repository root
    overrides: tuple[str, ...] = ()

    def config_file(self) -> str:
        return str(ROOT / self.config)


# The ViTs take 8-px patches (an 8 x 8 grid at 64 px: at 16 px MAE keeps 4 visible patches of 16 and
# learned nothing a probe could read in our trials); SIM's tiny default is 64-d: widened to mae_vit_tiny's
# 96-d x 2 blocks x 3 heads, its block-wise mask scaled to the grid as the official 118 of 14 x 14
# (min 16). MAE and ConvMAE regress normalised pixels, as the papers' recipes.
VIT_PATCH_8 = ("model_kwargs.patch_size=8",)
METHODS = (
    ClaimMethod("mae", "configs/pretrain/mae_tiny_toy.py", (*VIT_PATCH_8, "model_kwargs.norm_pix_loss=True")),
    ClaimMethod("sim", "configs/pretrain/sim_tiny_toy.py",
                (*VIT_PATCH_8, "model_kwargs.embed_dim=96", "model_kwargs.num_heads=3", "num_mask_patches=38",
                 "min_mask_patches=5")),
    ClaimMethod("convmae", "configs/pretrain/convmae_tiny_toy.py", ("model_kwargs.norm_pix_loss=True",)),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The claim mode's options of tools/mini_repro.py."""
    p.add_argument("--claim", action="store_true", help="the classification claim (kNN / linear probe)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="claim: pretraining + probe seeds")
    p.add_argument("--epochs", type=int, default=8, help="claim: pretraining epochs over the pool")
    p.add_argument("--pool", type=int, default=4000, help="claim: unlabelled images")
    p.add_argument("--labels", type=int, nargs="+", default=[64], help="claim: label budgets (multiples of 8)")
    p.add_argument("--methods", nargs="+", choices=[m.name for m in METHODS], help="claim: these methods only")
    p.add_argument("--report-only", action="store_true",
                   help="claim: rebuild the tables and plots from finished runs; a missing step is an error")
    ft.add_finetune_arguments(p)


class UnfinishedStep(FileNotFoundError):
    """--report-only met a step of the claim whose output is not in --output."""

    def __init__(self, step: str):
        super().__init__(f"--report-only: {step} has no finished output in this --output; run the same command "
                         "without --report-only to make it")


def refuse_to_run(script: str, arguments: list[str], log: Path) -> None:
    """The RunTool of --report-only: any step it would run is unfinished."""
    raise UnfinishedStep(f"step {log.stem!r} (tools/{script})")


def sizes(args: argparse.Namespace) -> dict[str, int]:
    """Pool, per-class train / val images, pretraining epochs: the quick pipeline check or the run."""
    if args.quick:
        return {"pool": 128, "train": max(args.labels) // 8, "val": 4, "epochs": 1}
    return {"pool": args.pool, "train": 50, "val": 50, "epochs": args.epochs}


def pretrain_overrides(method: ClaimMethod, seed: int, epochs: int, data: Path) -> list[str]:
    """Everything a claim pretraining run sets on its config (the same for every method)."""
    return [*method.overrides, f"seed={seed}", f"epochs={epochs}", "warmup_epochs=1", "batch_size=64",
            "vis_every_epochs=0", "log_interval=50", "keep_last=1", f"knn_data={data / 'cls'}"]


def make_data(args: argparse.Namespace, run_tool: RunTool, out: Path) -> Path:
    """Step 1 -> the data folder (images/, cls/)."""
    data, n = out / "data", sizes(args)
    if args.fresh or not (data / "cls" / "val").is_dir() or not (data / "images").is_dir():
        run_tool("make_toy_data.py", ["--out", str(data), "--world", "textured", "--only", "images", "cls",
                                      "--num-images", str(n["pool"]), "--num-train", str(n["train"]),
                                      "--num-val", str(n["val"]), "--subsets", *map(str, args.labels)],
                 out / "logs" / "data.log")
    return data


def pretrain(args: argparse.Namespace, run_tool: RunTool, methods: list[ClaimMethod], data: Path, out: Path) -> None:
    """Step 2: one pretraining run per method and seed -> OUT/pretrain/<method>_s<seed>."""
    for method in methods:
        for seed in args.seeds:
            run_dir = out / "pretrain" / f"{method.name}_s{seed}"
            if args.fresh or not (run_dir / "encoder.pth").is_file():
                overrides = pretrain_overrides(method, seed, sizes(args)["epochs"], data)
                run_tool("train_mim.py", ["--config", method.config, "--data", str(data / "images"),
                                          "--output", str(run_dir), "--overwrite", *overrides],
                         out / "logs" / f"pretrain_{method.name}_s{seed}.log")


def evaluate_all(args: argparse.Namespace, methods: list[ClaimMethod], data: Path, out: Path) -> Results:
    """Step 3: random init and pretrained weights of every method and seed -> results (cached as JSON)."""
    results: Results = {}
    budgets = (*args.labels, ALL_LABELS)
    for method in methods:
        for init in (f"random_{method.name}", method.name):
            for seed in args.seeds:
                path = out / "eval" / f"{init}_s{seed}.json"
                if args.fresh or not path.is_file():
                    if args.report_only:
                        raise UnfinishedStep(f"the frozen evaluation {path.name}")
                    overrides = pretrain_overrides(method, seed, sizes(args)["epochs"], data)
                    cfg = load_config(method.config_file(), overrides)
                    run_dir = None if init.startswith("random") else out / "pretrain" / f"{method.name}_s{seed}"
                    t0 = time.time()
                    scores = evaluate(cfg, run_dir, data / "cls", budgets)
                    print(f"  {init} seed {seed}: {scores} ({time.time() - t0:.0f} s)", flush=True)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(scores, indent=1))
                results.setdefault(init, {})[seed] = json.loads(path.read_text())
    return results


def knn_curves(methods: list[ClaimMethod], seeds: list[int], out: Path) -> dict[str, list[tuple[int, float]]]:
    """The kNN monitor records of every pretraining run: {'<method> s<seed>': [(iteration, top-1)]}."""
    curves = {}
    for method in methods:
        for seed in seeds:
            log = out / "pretrain" / f"{method.name}_s{seed}" / "log.jsonl"
            records = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
            curves[f"{method.name} s{seed}"] = [(r["iteration"], r["knn_top1"]) for r in records if "knn_top1" in r]
    return curves


def run_claim(args: argparse.Namespace, run_tool: RunTool, out: Path) -> Results:
    """Steps 1-5; writes OUT/claim_table.md, OUT/claim_results.json + claim_seeds.png (cls),
    OUT/claim_finetune.json + claim_finetune.png (det / seg), OUT/claim_knn.png; returns the cls results."""
    t_start = time.time()
    run_tool = refuse_to_run if args.report_only else run_tool
    methods = [m for m in METHODS if not args.methods or m.name in args.methods]
    data = make_data(args, run_tool, out)
    pretrain(args, run_tool, methods, data, out)
    tables, results = [], {}
    if "cls" in args.tasks:
        results = evaluate_all(args, methods, data, out)
        tables.append("Frozen features: kNN / linear-probe top-1 (%)\n\n"
                      + markdown_table(results, [(m.name, f"random_{m.name}") for m in methods]))
        (out / "claim_results.json").write_text(json.dumps(results, indent=1))
        plot_seeds(results, out / "claim_seeds.png")
    if set(args.tasks) & set(ft.FINETUNE_TASKS):
        ft.make_finetune_data(args, run_tool, data, out)
        ft.finetune(args, run_tool, [m.name for m in methods], data, out)
    finetuned = ft.collect([m.name for m in methods], args.seeds, out)
    if finetuned:
        setting = "quick" if args.quick else f"{args.ft_train} labelled images, {args.ft_iters} iterations"
        tables.append(f"Low-label fine-tuning ({setting}): "
                      "Mask R-CNN box / mask AP, UperNet mIoU\n\n"
                      + markdown_table(finetuned, [pair for pair in ft.finetune_pairs([m.name for m in methods])
                                                   if pair[0] in finetuned]))
        (out / "claim_finetune.json").write_text(json.dumps(finetuned, indent=1))
        plot_seeds(finetuned, out / "claim_finetune.png", unit="(%)")
    table = "\n\n".join(tables)
    (out / "claim_table.md").write_text(table + "\n")
    plot_curves(knn_curves(methods, args.seeds, out), out / "claim_knn.png")
    print(f"\nclaim ({'quick' if args.quick else 'full'} mode, {time.time() - t_start:.0f} s), {out}:\n\n{table}\n",
          flush=True)
    return results
