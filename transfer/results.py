"""Results of fine-tuning runs beside the papers' numbers (framework-free: reads the files that
detectron2 and mmengine write, never imports them).

- classification output dir (tools/train_cls.py): ``results.json`` with "acc1" (ImageNet top-1 %).

- detectron2 output dir (tools/train_det.py): ``results.json`` ({"bbox": {"AP": ..}, "segm": {..}},
  written by our tool) or else the last evaluation record of ``metrics.json`` (JSON lines with
  "bbox/AP", "segm/AP").
- mmseg work dir (tools/train_seg.py): the last record holding "mIoU" in the newest JSON-lines log
  under it (mmengine's ``<timestamp>/vis_data/scalars.json`` or ``<timestamp>/<timestamp>.json``).

Each run is matched to a row of ``configs/paper_results.json`` by its config's file stem (the default
output dir name of both tools, or the ``<stem>.py`` mmengine dumps into its work dir), by an explicit
``DIR=ROW``, or by a ``run_info.json`` in the dir ({"row", "backbone", "pretraining", "schedule"},
written by tools/mini_repro.py).
"""
from __future__ import annotations

import csv
import glob
import io
import json
import os
import re
from pathlib import Path

PAPER_RESULTS = Path(__file__).resolve().parents[1] / "configs" / "paper_results.json"
METRICS = ("AP_box", "AP_mask", "mIoU", "acc1")
INFO_FIELDS = ("backbone", "pretraining", "schedule")


def load_paper_results(path: str | os.PathLike = PAPER_RESULTS) -> dict[str, dict]:
    """{row key: {task, backbone, pretraining, schedule, AP_box / AP_mask / mIoU / acc1, source, url}}."""
    with open(path) as f:
        return json.load(f)["rows"]


def _json_lines(path: str) -> list[dict]:
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return records


def read_det_metrics(run_dir: str | os.PathLike) -> dict[str, float] | None:
    """{'AP_box', 'AP_mask'} of a detectron2 output dir, None when it holds no evaluation. A run that kept
    no detection scores 0 (``found_nothing``)."""
    run_dir = Path(run_dir)
    if found_nothing(run_dir):  # detectron2 skips COCO evaluation then and reports NaN box AP, no mask AP
        return {"AP_box": 0.0, "AP_mask": 0.0}
    if (run_dir / "results.json").is_file():
        res = json.loads((run_dir / "results.json").read_text())
        out = {"AP_box": res.get("bbox", {}).get("AP"), "AP_mask": res.get("segm", {}).get("AP")}
        if any(v is not None for v in out.values()):
            return out
    if (run_dir / "metrics.json").is_file():
        evals = [r for r in _json_lines(str(run_dir / "metrics.json")) if "bbox/AP" in r or "segm/AP" in r]
        if evals:
            return {"AP_box": evals[-1].get("bbox/AP"), "AP_mask": evals[-1].get("segm/AP")}
    return None


def found_nothing(run_dir: Path) -> bool:
    """Whether a finished detection run kept no detection on its evaluation set (every score below the
    test threshold; its saved detections are ``[]``): its AP is 0 by COCO's definition (recall 0 at every
    threshold). Every detection row here is a Mask R-CNN, so its mask AP is 0 as well."""
    detections = run_dir / "inference" / "coco_instances_results.json"
    return (run_dir / "results.json").is_file() and detections.is_file() and json.loads(detections.read_text()) == []


def read_cls_metrics(run_dir: str | os.PathLike) -> dict[str, float] | None:
    """{'acc1'} (top-1 %) of a tools/train_cls.py output dir, None when it holds no results.json with acc1."""
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        return None
    acc1 = json.loads(path.read_text()).get("acc1")
    return None if acc1 is None else {"acc1": acc1}


def _seg_logs(run_dir: Path) -> list[str]:
    """JSON-lines logs of mmengine runs under ``run_dir``, newest last."""
    paths = glob.glob(str(run_dir / "*" / "vis_data" / "scalars.json")) + glob.glob(str(run_dir / "*" / "*.json"))
    return sorted(set(paths), key=os.path.getmtime)


def read_seg_metrics(run_dir: str | os.PathLike) -> dict[str, float] | None:
    """{'mIoU'} (percent, as mmseg reports it) of an mmseg work dir, None when it holds no evaluation."""
    for path in reversed(_seg_logs(Path(run_dir))):
        evals = [r for r in _json_lines(path) if "mIoU" in r or "val/mIoU" in r or "test/mIoU" in r]
        if evals:
            last = evals[-1]
            return {"mIoU": next(last[k] for k in ("mIoU", "val/mIoU", "test/mIoU") if k in last)}
    return None


def run_iterations(run_dir: str | os.PathLike) -> int | None:
    """The training length a run was configured with: train.max_iter of the config.yaml detectron2 dumps,
    else train_cfg.max_iters of the config mmengine dumps into its work dir; None when neither is there."""
    run_dir = Path(run_dir)
    dumped = [run_dir / "config.yaml"] if (run_dir / "config.yaml").is_file() else sorted(run_dir.glob("*.py"))
    for path in dumped:
        found = re.search(r"^\s+max_iter: (\d+)$|max_iters=(\d+)", path.read_text(), flags=re.M)
        if found:
            return int(found.group(1) or found.group(2))
    return None


def row_key(run_dir: str | os.PathLike) -> str:
    """The paper row a run belongs to: run_info.json's 'row', the config dumped by mmengine, or the
    dir name (both tools name their default output dir after the config)."""
    run_dir = Path(run_dir)
    info = run_dir / "run_info.json"
    if info.is_file():
        row = json.loads(info.read_text()).get("row")
        if row:
            return row
    dumped = sorted(run_dir.glob("*.py"))
    return dumped[0].stem if len(dumped) == 1 else run_dir.name


def collect_run(run_dir: str | os.PathLike, row: str | None = None, paper: dict | None = None) -> dict:
    """One table row: run, task, backbone, pretraining, schedule, our metrics, paper metrics, deltas."""
    paper = load_paper_results() if paper is None else paper
    run_dir = Path(run_dir)
    found = {"det": read_det_metrics(run_dir), "seg": read_seg_metrics(run_dir), "cls": read_cls_metrics(run_dir)}
    found = {task: metrics for task, metrics in found.items() if metrics is not None}
    if not found:
        raise FileNotFoundError(
            f"{run_dir}: no evaluation found (expected detectron2's results.json / metrics.json with bbox/AP, "
            "an mmseg work dir whose logs hold mIoU, or tools/train_cls.py's results.json with acc1). Did the run "
            "finish its evaluation?"
        )
    key = row or row_key(run_dir)
    ref = paper.get(key, {})
    info = json.loads((run_dir / "run_info.json").read_text()) if (run_dir / "run_info.json").is_file() else {}
    out = {"run": str(run_dir), "row": key, "task": next(iter(found))}
    for f in INFO_FIELDS:
        out[f] = info.get(f) or ref.get(f) or "?"
    ours = {name: value for metrics in found.values() for name, value in metrics.items()}
    for m in METRICS:
        out[m] = ours.get(m)
        out[f"paper_{m}"] = ref.get(m)
        have = out[m] is not None and out[f"paper_{m}"] is not None
        out[f"diff_{m}"] = round(out[m] - out[f"paper_{m}"], 2) if have else None
    return out


def _fmt(v, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def format_markdown(rows: list[dict]) -> str:
    """Markdown table; each metric cell reads 'ours / paper (difference)'."""
    metrics = [m for m in METRICS if any(r[m] is not None for r in rows)]
    head = ["run", "backbone", "pretraining", "schedule"] + [f"{m} ours / paper (diff)" for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [Path(r["run"]).name, r["backbone"], r["pretraining"], r["schedule"]]
        for m in metrics:
            if r[m] is None:
                cells.append("-")
            else:
                diff = f" ({_fmt(r[f'diff_{m}'], True)})" if r[f"diff_{m}"] is not None else ""
                cells.append(f"{_fmt(r[m])} / {_fmt(r[f'paper_{m}'])}{diff}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


CSV_FIELDS = ["run", "row", "task", *INFO_FIELDS] + [f"{p}{m}" for m in METRICS for p in ("", "paper_", "diff_")]


def format_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in CSV_FIELDS})
    return buf.getvalue()
