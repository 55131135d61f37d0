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


def test_model_info_counts_the_kept_positions_only():
    """tools/model_info.py counts with FlopCounterMode by module: ConvMAE's encoder at mask ratio 0.75
    costs well under half of its cost at ratio 0 (stages 1-2 run at kept positions only), and the
    module shares never exceed the total."""
    import torch

    from pretrain.models import build_model
    from tool_module import load_tool

    model_info = load_tool("model_info")
    torch.manual_seed(0)
    model = build_model("convmae_tiny").eval()
    encoder = model_info.encoder_modules(model)
    macs = {ratio: model_info.forward_macs(model, model_info.example_call(model, "convmae", 64, ratio))
            for ratio in (0.75, 0.0)}
    enc = {ratio: sum(m[name] for name in encoder) for ratio, m in macs.items()}
    assert 0 < enc[0.75] < 0.5 * enc[0.0]
    for m in macs.values():
        assert sum(v for k, v in m.items() if k != "total") <= m["total"] * (1 + 1e-9)
