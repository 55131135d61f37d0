"""tools/mini_repro.py --quick end to end: toy data, tiny MAE / SIM / ConvMAE pretraining, Mask R-CNN (and
UperNet when mmseg is installed) fine-tuning from each encoder and from random initialisation, the
table. A few steps each: this checks the pipeline, not the numbers (the full run is in the README)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("detectron2")


@pytest.mark.slow
def test_quick_mini_repro_end_to_end(tmp_path):
    out = tmp_path / "mini"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "mini_repro.py"), "--quick", "--output", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    for name in ("mae", "sim", "convmae"):
        assert (out / "pretrain" / name / "encoder.pth").is_file()
    # the pretrained encoders were loaded into the detectors' backbones (not silently skipped)
    for name in ("mae", "sim", "convmae"):
        log = (out / "det" / name / "log.txt").read_text().splitlines()
        loaded = [line for line in log if "Loaded pretraining checkpoint into the backbone" in line]
        assert loaded and f"from {out / 'pretrain' / name / 'encoder.pth'};" in loaded[0], loaded
    assert "Loaded pretraining checkpoint" not in (out / "det" / "random_vit" / "log.txt").read_text()

    rows = list(csv.DictReader((out / "table.csv").open()))
    tasks = {"det"} | ({"seg"} if (out / "seg").is_dir() else set())
    assert len(rows) == 5 * len(tasks)
    for row in rows:
        metric = row["AP_box"] if row["task"] == "det" else row["mIoU"]
        assert metric != "" and 0.0 <= float(metric) <= 100.0, row
    assert "MAE vs random init (det, same budget): AP_box" in proc.stdout
    info = json.loads((out / "det" / "sim" / "run_info.json").read_text())
    assert info["pretraining"].startswith("SIM toy") and info["backbone"].startswith("ViT-tiny")
