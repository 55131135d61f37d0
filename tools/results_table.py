"""Our fine-tuning results beside the papers' (Markdown and CSV).

    python tools/results_table.py output/det/mask_rcnn_vitdet_mae_b_100ep work_dirs/seg/upernet_mae_vit_base_512_160k_ade20k
    python tools/results_table.py runs/my_convmae=mask_rcnn_convmae_b_fpn_25ep --csv table.csv
    python tools/results_table.py output/cls/mae_vit_base_finetune   # results.json of tools/train_cls.py
    python tools/results_table.py --paper          # the reference numbers and their sources

A DIR is a detectron2 output dir (results.json / metrics.json of tools/train_det.py), an mmseg work
dir (logs of tools/train_seg.py) or a classification output dir (results.json of tools/train_cls.py:
acc1, ImageNet top-1 %). DIR=ROW names its row of configs/paper_results.json; otherwise the
row is the config name (the tools' default dir names) or run_info.json's "row".
"""
from __future__ import annotations

import argparse
import sys

from transfer.results import METRICS, PAPER_RESULTS, collect_run, format_csv, format_markdown, load_paper_results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="output / work dirs, optionally DIR=ROW")
    p.add_argument("--paper-results", default=str(PAPER_RESULTS), help="the reference numbers (JSON)")
    p.add_argument("--csv", help="also write the CSV to this file")
    p.add_argument("--paper", action="store_true", help="print the reference rows and their sources")
    args = p.parse_args(argv)
    paper = load_paper_results(args.paper_results)
    if args.paper:
        for key, ref in paper.items():
            nums = ", ".join(f"{m} {ref[m]}" for m in METRICS if ref.get(m) is not None)
            print(f"{key}: {ref['backbone']}, {ref['pretraining']}, {ref['schedule']}: {nums or 'not reported'}\n"
                  f"    source: {ref['source']} <{ref['url']}>")
        if not args.runs:
            return 0
    if not args.runs:
        p.error("give one or more run dirs (or --paper)")
    rows = []
    for spec in args.runs:
        run_dir, _, row = spec.partition("=")
        try:
            rows.append(collect_run(run_dir, row or None, paper))
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    text = format_csv(rows)
    print(format_markdown(rows) + "\n\n" + text, end="")
    if args.csv:
        with open(args.csv, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
