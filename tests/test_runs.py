"""No lost run: one run per output folder (pretrain/run_dir.py, used by all three tools), a lock that a
killed run does not leave stuck, checkpoints never visible half-written under their final name, the
pretraining command line (--resume / --resume-from / --overwrite) and values checked up front."""
from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from pretrain_toy import ROOT, config_path, write_images

from pretrain.config import ConfigError, load_config, validate_config
from pretrain.engine import train
from pretrain.run_dir import LOCK_NAME, RunDirError, claim_run_dir
from tool_module import load_tool

ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
TINY = ["max_iters=1", "epochs=1", "vis_every_epochs=0", "log_interval=1"]  # one iteration of the toy MAE


def pretrain(data: str, out: str, *args: str) -> str | None:
    """tools/train_mim.py with these arguments -> None, or the message it exited with."""
    try:
        load_tool("train_mim").main(["--config", config_path("mae_tiny_toy.py"), "--data", data, "--output", out,
                                    *args])
    except SystemExit as e:
        return str(e.code)
    return None


def checkpoints(out: str) -> list[str]:
    return sorted(f for f in os.listdir(out) if f.startswith("checkpoint-"))


# ---------------------------------------------------------------------------------------- the folder rule
def test_claim_refuses_a_used_folder_unless_resumed_or_overwritten(tmp_path):
    run = tmp_path / "run"
    with claim_run_dir(str(run)):  # a new folder: created, marked, locked
        (run / "checkpoint-00000002.pth").write_bytes(b"old run")
    assert (run / LOCK_NAME).is_file()
    with pytest.raises(RunDirError, match="checkpoint-00000002.pth"):  # what it found
        claim_run_dir(str(run))
    with claim_run_dir(str(run), resume=True):
        assert (run / "checkpoint-00000002.pth").is_file()  # resuming keeps the run
    with pytest.raises(RunDirError):
        claim_run_dir(str(run), resume=True, overwrite=True)
    with claim_run_dir(str(run), overwrite=True):
        assert os.listdir(run) == [LOCK_NAME]  # the old run's files are gone


def test_overwrite_never_clears_a_folder_these_tools_did_not_write(tmp_path):
    (tmp_path / "thesis.tex").write_text("not a run")
    with pytest.raises(RunDirError, match="thesis.tex"):
        claim_run_dir(str(tmp_path), overwrite=True)
    with pytest.raises(RunDirError, match="thesis.tex"):
        claim_run_dir(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["thesis.tex"]  # untouched, and no lock file left to admit --overwrite
    with pytest.raises(RunDirError, match="thesis.tex"):
        claim_run_dir(str(tmp_path), overwrite=True)


HOLDER = ("import sys, time; from pretrain.run_dir import claim_run_dir; claim_run_dir(sys.argv[1]); "
          "print('held', flush=True); time.sleep(120)")


def hold(folder: str) -> subprocess.Popen:
    """Another process that claims ``folder`` and keeps it until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, folder], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_process_is_refused_and_a_killed_holder_frees_the_folder(tmp_path):
    folder = str(tmp_path / "run")
    holder = hold(folder)
    try:
        with pytest.raises(RunDirError, match=rf"\b{holder.pid}\b"):  # names the process holding it
            claim_run_dir(folder)
        with pytest.raises(RunDirError, match=rf"\b{holder.pid}\b"):  # resuming does not get past a live run either
            claim_run_dir(folder, resume=True)
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: no cleanup code runs
        holder.wait()
    with claim_run_dir(folder):  # the operating system released the lock with the process
        pass


# ---------------------------------------------------------------------------------------- pretraining CLI
def test_pretrain_refuses_a_used_output_and_overwrite_starts_again(tmp_path, capsys):
    data, out = write_images(str(tmp_path / "data"), 8, 64), str(tmp_path / "out")
    assert pretrain(data, out, *TINY) is None
    first = capsys.readouterr().out
    assert checkpoints(out) == ["checkpoint-00000001.pth"]
    first_log = json.loads(open(os.path.join(out, "log.jsonl")).readline())
    before = {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out) if f != LOCK_NAME}

    refused = pretrain(data, out, "max_iters=3", "epochs=2", "vis_every_epochs=0")
    assert refused and "already holds a run" in refused and "--resume" in refused and "--overwrite" in refused
    assert {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out) if f != LOCK_NAME} == before

    open(os.path.join(out, "checkpoint-00000099.pth"), "wb").close()  # an old run's later checkpoint
    assert pretrain(data, out, "--overwrite", *TINY, "seed=1") is None
    assert checkpoints(out) == ["checkpoint-00000001.pth"]  # the old run's files were deleted first
    assert json.load(open(os.path.join(out, "config.json")))["seed"] == 1
    assert len(open(os.path.join(out, "log.jsonl")).readlines()) == 1  # a new log, not appended
    assert " eta 0:00:0" in first and "eta_s" in first_log  # progress lines carry an ETA


def test_resume_flag_does_not_take_the_next_word(tmp_path, capsys):
    data, out = write_images(str(tmp_path / "data"), 8, 64), str(tmp_path / "out")
    common = ["epochs=2", "vis_every_epochs=0", "log_interval=1"]  # 8 images / batch 4: 2 it/epoch, 4 in all
    assert pretrain(data, out, *common, "max_iters=2") is None
    assert pretrain(data, out, "--resume", "max_iters=3", *common) is None  # once read as a checkpoint path
    assert "resumed from" in capsys.readouterr().out
    assert checkpoints(out)[-1] == "checkpoint-00000003.pth"
    other = str(tmp_path / "branch")
    assert pretrain(data, other, "--resume-from", os.path.join(out, "checkpoint-00000002.pth"), *common) is None
    assert checkpoints(other)[-1] == "checkpoint-00000004.pth"
    assert pretrain(data, other, "--resume", "--resume-from", "x.pth") == "2"  # argparse's usage error
    assert "--resume-from" in capsys.readouterr().err


def test_pretrain_is_refused_while_another_process_writes_the_output(tmp_path):
    data, out = write_images(str(tmp_path / "data"), 8, 64), str(tmp_path / "out")
    holder = hold(out)
    try:
        refused = pretrain(data, out, *TINY)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert refused and str(holder.pid) in refused
    assert os.listdir(out) == [LOCK_NAME]
    assert pretrain(data, out, *TINY) is None  # the killed holder left nothing stuck
    assert checkpoints(out) == ["checkpoint-00000001.pth"]


# ---------------------------------------------------------------------------------------- values
@pytest.mark.parametrize("override", ["batch_size=-4", "batch_size=0", "epochs=0", "lr=0", "accum_iter=0",
                                      "log_interval=0", "mask_ratio=1.0", "dtype='fp16'"])
def test_impossible_values_are_refused_before_anything_is_built(tmp_path, override):
    data = write_images(str(tmp_path / "data"), 8, 64)
    cfg = load_config(config_path("mae_tiny_toy.py"), [override], data=data, output_dir=str(tmp_path / "out"))
    with pytest.raises(ConfigError, match=re.escape(override)):  # names the value it refuses
        train(cfg)
    assert not (tmp_path / "out").exists()  # no folder, no untrained encoder.pth


def test_every_bad_value_is_listed_at_once_through_the_cli(tmp_path):
    data, out = write_images(str(tmp_path / "data"), 8, 64), str(tmp_path / "out")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_mim.py"), "--config", config_path("mae_tiny_toy.py"),
           "--data", data, "--output", out, "batch_size=-4", "epochs=0"]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "batch_size=-4" in proc.stderr and "epochs=0" in proc.stderr  # both, at once
    assert not os.path.exists(os.path.join(out, "encoder.pth"))


def test_paper_and_toy_configs_pass_validation():
    for name in sorted(os.listdir(os.path.dirname(config_path("x")))):
        if name.endswith(".py"):
            validate_config(load_config(config_path(name)))


# ---------------------------------------------------------------------------------------- atomic checkpoints
BIG = 6_000_000  # floats: a 24 MB checkpoint takes long enough to save that kills land inside saves


def kill_during_saves(save, folder: str, check, repeats: int = 6) -> int:
    """Fork a process that calls ``save(i)`` for i = 0, 1, ... back to back (writing checkpoints into
    ``folder``), SIGKILL it while a file is being written (a temporary file is there) and
    ``check(folder)`` what is visible under final names; ``repeats`` times. Returns how many kills
    left a temporary file, i.e. landed inside a write. Everything is built before the fork: the child
    only serialises and writes."""
    def loop(started) -> None:
        torch.set_num_threads(1)
        started.set()
        for i in range(10_000):
            save(i)

    ctx, rng, mid_save = multiprocessing.get_context("fork"), random.Random(0), 0
    for _ in range(repeats):
        started = ctx.Event()
        proc = ctx.Process(target=loop, args=(started,))
        proc.start()
        assert started.wait(60), "the saving process did not start"
        time.sleep(rng.uniform(0.0, 0.3))  # somewhere in the sequence of saves ...
        deadline = time.time() + 60
        while not any(".tmp." in f for f in os.listdir(folder)) and time.time() < deadline:
            time.sleep(0.0005)  # ... at the next write (its temporary file is there)
        time.sleep(rng.uniform(0.0, 0.005))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        temps = [f for f in os.listdir(folder) if ".tmp." in f]
        mid_save += bool(temps)
        for f in temps:
            os.remove(os.path.join(folder, f))
        check(folder)
    return mid_save


def complete(path: str) -> None:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    assert obj["model"]["w"].numel() == BIG, path


def check_all(prefix: str, last_checkpoint: bool = False):
    """Every file named ``prefix*`` loads completely; so does the one ``last_checkpoint`` names."""
    def check(folder: str) -> None:
        for f in os.listdir(folder):
            if f.startswith(prefix):
                complete(os.path.join(folder, f))
        tag = os.path.join(folder, "last_checkpoint")
        if last_checkpoint and os.path.exists(tag):
            complete(os.path.join(folder, open(tag).read()))
    return check


def test_pretraining_checkpoints_are_never_visible_half_written(tmp_path):
    from pretrain.train_state import save_checkpoint

    state = {"model": {"w": torch.randn(BIG)}}
    save = lambda i: save_checkpoint(state, str(tmp_path), i + 1, keep_last=2)  # noqa: E731
    assert kill_during_saves(save, str(tmp_path), check_all("checkpoint-")) >= 3


def test_detection_checkpoints_are_never_visible_half_written(tmp_path):
    from transfer.det.checkpointer import AtomicDetectionCheckpointer

    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.randn(BIG))
    checkpointer = AtomicDetectionCheckpointer(model, str(tmp_path), save_to_disk=True)
    save = lambda i: checkpointer.save(f"model_{i % 3:07d}", iteration=i)  # as PeriodicCheckpointer  # noqa: E731
    assert kill_during_saves(save, str(tmp_path), check_all("model_", last_checkpoint=True)) >= 3


def test_detection_training_uses_the_atomic_checkpointer():
    import inspect

    from transfer.det import engine

    source = inspect.getsource(engine.do_train)
    assert "AtomicDetectionCheckpointer(model, cfg.train.output_dir" in source
    assert " DetectionCheckpointer(" not in source


def test_segmentation_checkpoints_are_never_visible_half_written(tmp_path):
    from mmengine.runner import save_checkpoint

    from transfer.seg.atomic_backend import BACKEND

    state = {"model": {"w": torch.randn(BIG)}}

    def save(i):  # what CheckpointHook -> Runner.save_checkpoint calls, with the hook's backend_args
        save_checkpoint(state, os.path.join(tmp_path, f"iter_{i % 3}.pth"), backend_args=dict(backend=BACKEND))

    assert kill_during_saves(save, str(tmp_path), check_all("iter_")) >= 3


def test_segmentation_runs_save_through_the_atomic_backend(tmp_path):
    from transfer.seg.atomic_backend import BACKEND
    from transfer.seg.train import ADE_SPLITS, build_config, config_for_backbone

    for split in ADE_SPLITS:
        os.makedirs(tmp_path / split)
    for backbone in ("mae_vit_tiny", "mae_vit_base"):  # the toy row and a paper row
        cfg = build_config(config_for_backbone(backbone), dataset=str(tmp_path), work_dir=str(tmp_path / "w"))
        assert cfg.default_hooks.checkpoint.backend_args == dict(backend=BACKEND), backbone


# ---------------------------------------------------------------------------------------- detection, segmentation
def used_run_dir(path) -> None:
    """A folder holding a finished run of one of our tools."""
    with claim_run_dir(str(path)):
        (path / "model_final.pth").write_bytes(b"an earlier run")


def assert_refuses_used_and_busy_folders(run, tmp_path) -> None:
    """``run(folder, *extra)`` runs a tool into ``folder``: a folder holding another run is refused and
    left untouched; one that another (then SIGKILLed) process holds is refused, even with --resume."""
    used_run_dir(tmp_path / "used")
    with pytest.raises(SystemExit) as exit_:
        run(str(tmp_path / "used"))
    assert "--overwrite" in str(exit_.value.code)
    assert sorted(os.listdir(tmp_path / "used")) == [LOCK_NAME, "model_final.pth"]  # untouched
    holder = hold(str(tmp_path / "busy"))
    try:
        with pytest.raises(SystemExit) as exit_:
            run(str(tmp_path / "busy"), "--resume")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert str(holder.pid) in str(exit_.value.code)


def test_detection_refuses_a_used_output_and_one_in_use(tmp_path):
    tool = load_tool("train_det")
    args = ["--backbone", "mae_vit_tiny", "--dataset", "toy", "--from-scratch", "--output"]
    assert_refuses_used_and_busy_folders(lambda folder, *extra: tool.cli([*args, folder, *extra]), tmp_path)


def test_segmentation_refuses_a_used_work_dir_and_one_in_use(tmp_path):
    from transfer.seg.train import ADE_SPLITS

    tool = load_tool("train_seg")
    for split in ADE_SPLITS:  # the layout check passes; the refusal comes before any data is read
        os.makedirs(tmp_path / "ade" / split)
    args = ["--backbone", "mae_vit_tiny", "--dataset", str(tmp_path / "ade"), "--work-dir"]
    assert_refuses_used_and_busy_folders(lambda folder, *extra: tool.main([*args, folder, *extra]), tmp_path)
