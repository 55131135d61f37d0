"""tools/train_seg.py --resume when mmengine's ``last_checkpoint`` is broken.

mmengine's CheckpointHook writes ``last_checkpoint`` (the path of the newest checkpoint) with a plain
``open``; a run killed inside that write leaves it empty. Before: ``--resume`` then handed mmengine's
Runner an empty path (``find_latest_checkpoint`` returns ``''``), which failed reading the file ``''``
("no such file. Check the path"), naming neither last_checkpoint nor a way out. Now the run resumes from
the newest complete ``iter_*.pth`` / ``epoch_*.pth`` in the work dir and says so in the log; a clear
error when there is none.
"""
from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import pytest

from transfer.seg.checkpoint_loader import load_from_local_weights_only
from transfer.seg.train import build_config, checkpoint_to_resume, config_for_backbone
from transfer.toy_datasets import write_ade_toy
from tool_module import load_tool


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> str:
    return str(write_ade_toy(tmp_path_factory.mktemp("toy_ade"), num_train=4, num_val=1, size=128, seed=0))


def args(toy_root: str, work_dir: Path, max_iters: int) -> list[str]:
    return ["--backbone", "mae_vit_tiny", "--dataset", toy_root, "--work-dir", str(work_dir), "--cfg-options",
            "train_dataloader.batch_size=2", "default_hooks.checkpoint.interval=1",
            "default_hooks.checkpoint.max_keep_ckpts=3", "train_cfg.val_interval=100",
            f"train_cfg.max_iters={max_iters}"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, toy_root) -> Path:
    """A toy run of 2 iterations: iter_1.pth, iter_2.pth, last_checkpoint -> iter_2.pth."""
    work_dir = tmp_path_factory.mktemp("seg_resume") / "work"
    load_tool("train_seg").main(args(toy_root, work_dir, 2))
    assert Path(work_dir / "last_checkpoint").read_text().strip().endswith("iter_2.pth")
    return work_dir


def copy_run(trained: Path, tmp_path: Path) -> Path:
    work_dir = tmp_path / "work"
    shutil.copytree(trained, work_dir)
    (work_dir / "last_checkpoint").write_text(str(work_dir / "iter_2.pth"))  # as that run would have written it
    return work_dir


def run_logs(work_dir: Path) -> str:
    return "".join(Path(p).read_text() for p in glob.glob(str(work_dir / "*" / "*.log")))


def test_empty_last_checkpoint_resumes_from_the_newest_checkpoint(trained, tmp_path, toy_root, one_thread):
    work_dir = copy_run(trained, tmp_path)
    (work_dir / "last_checkpoint").write_text("")  # killed inside mmengine's open(...).write(...)
    load_tool("train_seg").main(["--resume"] + args(toy_root, work_dir, 3))
    assert load_from_local_weights_only(str(work_dir / "iter_3.pth"))["meta"]["iter"] == 3
    logs = run_logs(work_dir)
    assert "resumed epoch: 0, iter: 2" in logs  # not started over
    assert "last_checkpoint is empty" in logs and "iter_2.pth" in logs


def test_broken_pointers_fall_back_to_the_newest_complete_checkpoint(trained, tmp_path):
    work_dir = copy_run(trained, tmp_path)
    last, newest = work_dir / "last_checkpoint", work_dir / "iter_2.pth"
    assert checkpoint_to_resume(str(work_dir)) == (str(newest), "")  # intact: what last_checkpoint names

    last.write_text(str(work_dir / "iter_9.pth"))  # names a file that is not there
    path, note = checkpoint_to_resume(str(work_dir))
    assert path == str(newest) and "iter_9.pth, which does not exist" in note

    last.write_bytes(b"\xff\xfe\x00garbage")  # unreadable as text
    assert checkpoint_to_resume(str(work_dir))[0] == str(newest)

    newest.write_bytes(newest.read_bytes()[:1000])  # a truncated checkpoint is not resumed from
    last.write_text(str(newest))
    path, note = checkpoint_to_resume(str(work_dir))
    assert path == str(work_dir / "iter_1.pth") and "incomplete" in note

    last.unlink()  # no pointer at all (killed before its first write): the newest checkpoint too
    assert checkpoint_to_resume(str(work_dir))[0] == str(work_dir / "iter_1.pth")


def test_empty_last_checkpoint_without_checkpoints_is_a_clear_error(trained, tmp_path, toy_root):
    work_dir = copy_run(trained, tmp_path)
    for ckpt in work_dir.glob("iter_*.pth"):
        ckpt.unlink()
    (work_dir / "last_checkpoint").write_text("")
    with pytest.raises(SystemExit, match="last_checkpoint"):
        load_tool("train_seg").main(["--resume"] + args(toy_root, work_dir, 3))
    assert not (work_dir / "iter_1.pth").exists()  # nothing was trained
    os.remove(work_dir / "last_checkpoint")  # a work dir with no run at all: --resume starts it (as before)
    assert checkpoint_to_resume(str(work_dir)) == (None, "")


def test_eval_only_takes_the_same_fallback(trained, tmp_path, toy_root):
    """--eval-only without --weights evaluates the work dir's last checkpoint: also when the pointer is empty."""
    work_dir = copy_run(trained, tmp_path)
    (work_dir / "last_checkpoint").write_text("")
    cfg = build_config(config_for_backbone("mae_vit_tiny"), dataset=toy_root, work_dir=str(work_dir), eval_only=True)
    assert cfg.load_from == str(work_dir / "iter_2.pth") and "--eval-only uses" in cfg.resume_note


def test_resume_goes_on_from_the_work_dir_not_from_a_weights_segmentor_file(trained, tmp_path, toy_root):
    """--resume --weights SEG.pth: a work dir with a checkpoint goes on from it (as train_det); one
    without starts a new run from SEG.pth's weights, not from its optimizer state and iteration count.
    Before: mmengine resumed from SEG.pth in both cases (a released mmseg model, at iteration 160000,
    ends the run before it starts)."""
    work_dir = copy_run(trained, tmp_path)
    other = str(trained / "iter_1.pth")  # a segmentor checkpoint of another run
    common = dict(dataset=toy_root, weights=other, resume=True)
    cfg = build_config(config_for_backbone("mae_vit_tiny"), work_dir=str(work_dir), **common)
    assert cfg.resume and cfg.load_from == str(work_dir / "iter_2.pth")
    assert f"--weights {other} is not used" in cfg.resume_note
    cfg = build_config(config_for_backbone("mae_vit_tiny"), work_dir=str(tmp_path / "new"), **common)
    assert not cfg.resume and cfg.load_from == other and cfg.resume_requested
