"""The benchmarks' CPU-side logic: scripts/gpu_bench.sh skips cleanly without a GPU and runs every
row of ``tools/benchmark.py gpu`` at tiny sizes with --tiny; the ratios benchmark prints the attention
blocks' ratios against detectron2 and says when the official ConvMAE checkout is missing."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=full_env, timeout=300)


def test_gpu_bench_skips_without_a_gpu():
    out = run(["bash", "scripts/gpu_bench.sh"], CUDA_VISIBLE_DEVICES="")
    assert out.returncode == 0, out.stderr
    assert "no CUDA device: skipping the GPU benchmark" in out.stdout


def test_gpu_bench_tiny_runs_every_row_and_the_ratios():
    pytest.importorskip("detectron2", reason="the comparison rows need detectron2 (complete environment)")
    out = run(["bash", "scripts/gpu_bench.sh", "--tiny", "--official-convmae", "/nonexistent.py"],
              CUDA_VISIBLE_DEVICES="")
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    for case in ("MAE-B", "ConvMAE-B", "SIM-B", "ViTDet-B ours", "ViTDet-B detectron2 ViT", "ConvMAE-B ours",
                 "folded rel-pos attention, flash only"):
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(case + " ")), None)
        assert line is not None and "skipped" not in line, (case, text)
    assert re.search(r"ViTDet-B ours / ViTDet-B detectron2 ViT: speed [\d.]+x .* peak memory [\d.]+x", text), text
    assert "official ConvViTDet: no source file" in text


def test_ratios_benchmark_reports_time_and_memory_ratios():
    """Both attention blocks against detectron2 as ratios; without an official ConvMAE checkout its rows
    are left out, saying so."""
    pytest.importorskip("detectron2", reason="the baseline is detectron2's Block (complete environment)")
    out = run([sys.executable, "tools/benchmark.py", "ratios", "--official-convmae-dir", "/nonexistent",
               "--attention-img-size", "128", "--windows", "0", "4", "--rounds", "1", "--warmup", "0"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "no Alpha-VL/ConvMAE checkout at '/nonexistent'" in out.stdout
    for kind in ("global", "4x4 windows"):
        assert re.search(rf"block, {kind}, .* time ours / detectron2 [\d.]+x .* peak memory [\d.]+x", out.stdout), out.stdout


def test_data_benchmark_compares_both_pipelines(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(4):
        (tmp_path / f"c{i % 2}").mkdir(exist_ok=True)
        Image.fromarray((rng.random((120, 160, 3)) * 255).astype(np.uint8)).save(tmp_path / f"c{i % 2}" / f"{i}.jpg")
    out = run([sys.executable, "tools/benchmark.py", "data", "--data", str(tmp_path), "--passes", "1",
               "--img-size", "32"])
    assert out.returncode == 0, out.stderr[-3000:]
    for label in ("MAE", "SIM"):
        assert re.search(rf"^{label} .* [\d.]+ +[\d.]+ +[\d.]+x$", out.stdout, re.M), out.stdout
