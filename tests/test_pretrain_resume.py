"""Kill-and-resume equality and DDP == gradient accumulation, with real processes.

- A run SIGKILLed mid-epoch and resumed with --resume ends with bit-identical weights and optimizer
  state to an uninterrupted run (CPU, 1 thread per process).
- 2 gloo processes x batch 2 equal 1 process x batch 2 x accum_iter 2 (same seed): the same samples
  reach the same micro-batches (ResumableBatchSampler), so only summation order differs.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from pretrain_toy import ROOT, config_path, write_images

TOOL = os.path.join(ROOT, "tools", "train_mim.py")
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def command(config: str, data: str, out: str, *overrides: str) -> list[str]:
    return [sys.executable, TOOL, "--config", config_path(config), "--data", data, "--output", out, *overrides]


def final_state(out: str) -> dict:
    ckpts = sorted(f for f in os.listdir(out) if f.startswith("checkpoint-") and f.endswith(".pth"))
    return torch.load(os.path.join(out, ckpts[-1]), map_location="cpu", weights_only=False)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["mae_tiny_toy.py", "sim_tiny_toy.py"])
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, config):
    data = write_images(str(tmp_path / "data"), 16, 64)
    # 16 images / batch 2 = 8 iterations per epoch, 4 epochs; checkpoints every 3 iterations only
    args = ["epochs=4", "batch_size=2", "save_interval=3", "save_every_epochs=100", "keep_last=100",
            "log_interval=4", "vis_every_epochs=0", "threads=1"]
    ref = str(tmp_path / "ref")
    subprocess.run(command(config, data, ref, *args), env=ENV, check=True, capture_output=True, timeout=300)

    out = str(tmp_path / "killed")
    proc = subprocess.Popen(command(config, data, out, *args), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    first = os.path.join(out, "checkpoint-00000003.pth")
    deadline = time.time() + 240
    while not os.path.exists(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed; make it longer"
    assert not os.path.exists(os.path.join(out, "encoder.pth"))
    killed_at = int(sorted(f for f in os.listdir(out) if f.endswith(".pth"))[-1][11:19])
    assert killed_at % 8 != 0 and killed_at < 32, killed_at  # mid-epoch

    resumed = subprocess.run(command(config, data, out, *args, "--resume"), env=ENV, check=True,
                             capture_output=True, text=True, timeout=300)
    assert f"iteration {killed_at}" in resumed.stdout
    a, b = final_state(ref), final_state(out)
    assert a["iteration"] == b["iteration"] == 32
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for pid, st in a["optimizer"]["state"].items():
        for name, v in st.items():
            assert torch.equal(v, b["optimizer"]["state"][pid][name]), (pid, name)


@pytest.mark.slow
def test_two_process_ddp_equals_one_process_with_accumulation(tmp_path):
    data = write_images(str(tmp_path / "data"), 16, 64)
    args = ["epochs=2", "batch_size=2", "log_interval=4", "vis_every_epochs=0", "threads=1"]
    one = str(tmp_path / "one")
    subprocess.run(command("mae_tiny_toy.py", data, one, *args, "accum_iter=2"), env=ENV, check=True,
                   capture_output=True, timeout=300)
    two = str(tmp_path / "two")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    res = subprocess.run(launcher + command("mae_tiny_toy.py", data, two, *args)[1:], env=ENV,
                         capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        pytest.fail(f"torchrun failed ({res.returncode}):\n{res.stdout}\n{res.stderr}", pytrace=False)
    a, b = final_state(one), final_state(two)
    assert a["iteration"] == b["iteration"] == 8
    max_diff = max((a["model"][k] - b["model"][k]).abs().max().item() for k in a["model"])
    print(f"DDP vs accumulation: max |weight difference| after 8 iterations = {max_diff:.3e}")
    assert max_diff <= 1e-5
