"""The claim's pieces (transfer/claim): the 2-std verdict and the table, pooled frozen features of every
method at its pretraining initialisation, and tools/mini_repro.py --claim --quick end to end (slow)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pretrain.config import load_config
from transfer.claim import finetune as ft
from transfer.claim.frozen_eval import POOL, build_encoder
from transfer.claim.pipeline import METHODS, UnfinishedStep, pretrain_overrides
from transfer.claim.report import Stat, beats, markdown_table

from tool_module import load_tool

ROOT = Path(__file__).resolve().parents[1]


def test_beats_needs_more_than_twice_the_larger_std():
    random = Stat([10.0, 12.0, 14.0])  # mean 12, std 2
    assert beats(Stat([17.0, 17.0, 17.0]), random) == (5.0, 4.0, True)
    assert beats(Stat([15.0, 16.0, 17.0]), random)[2] is False  # +4 is not more than 2 x 2
    assert beats(Stat([5.0, 25.0, 21.0]), random)[2] is False  # its own spread counts too


def test_table_lists_every_seed_and_the_verdict():
    results = {"random_mae": {0: {"knn@64": 10.0}, 1: {"knn@64": 12.0}},
               "mae": {0: {"knn@64": 30.0}, 1: {"knn@64": 31.5}}}
    table = markdown_table(results, [("mae", "random_mae")])
    assert "10.0, 12.0" in table and "30.0, 31.5" in table
    assert "**yes**" in table.splitlines()[-1]
    one_seed = {name: {0: seeds[0]} for name, seeds in results.items()}
    assert "yes" not in markdown_table(one_seed, [("mae", "random_mae")])  # no spread, no verdict


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_pooled_features_of_the_pretraining_init(method, tmp_path):
    cfg = load_config(method.config_file(), pretrain_overrides(method, 3, 1, tmp_path))
    model, meth = build_encoder(cfg, None)
    torch.manual_seed(3)
    again = build_encoder(cfg, None)[0]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    with torch.no_grad():
        feats = meth.features(model, torch.randn(2, 3, 64, 64), POOL)
    assert feats.shape == (2, 96 if method.name != "convmae" else 64)
    torch.testing.assert_close(feats.mean(1), torch.zeros(2), atol=1e-4, rtol=0)  # layer-normalised
    assert not torch.allclose(feats[0], feats[1])


def test_missing_pretraining_run_is_an_error(tmp_path):
    method = METHODS[0]
    cfg = load_config(method.config_file(), pretrain_overrides(method, 0, 1, tmp_path))
    with pytest.raises(FileNotFoundError):
        build_encoder(cfg, tmp_path)


def test_table_marks_metrics_a_row_has_no_run_of():
    results = {"random_vit": {0: {"AP_box": 2.0, "mIoU": 30.0}, 1: {"AP_box": 2.5, "mIoU": 31.0}},
               "mae": {0: {"AP_box": 3.0}, 1: {"AP_box": 3.5}}}  # seg not run for mae yet
    last = markdown_table(results, [("mae", "random_vit")]).splitlines()[-1]
    assert last.count("–") == 1 and "+1.0 vs 2σ 0.7: **yes**" in last


def test_finetune_runs_differ_by_the_weights_only(tmp_path):
    inits = {i.name: i for i in ft.finetune_inits(["mae", "sim", "convmae"])}
    assert list(inits) == ["random_vit", "random_convmae", "mae", "sim", "convmae"]
    assert ft.finetune_pairs(["sim", "convmae"]) == [("sim", "random_vit"), ("convmae", "random_convmae")]
    for task in ft.FINETUNE_TASKS:
        script, random = ft.tool_arguments(task, inits["random_vit"], 2, tmp_path / "data", tmp_path, quick=False)
        pretrained = ft.tool_arguments(task, inits["sim"], 2, tmp_path / "data", tmp_path, quick=False)[1]
        weights = pretrained.index("--weights")
        assert pretrained[weights + 1] == str(tmp_path / "pretrain" / "sim_s2" / "encoder.pth")
        del pretrained[weights:weights + 2]
        assert [a.replace("sim_s2", "RUN") for a in pretrained] == [a.replace("random_vit_s2", "RUN") for a in random]
        assert "--weights" not in random and (ROOT / random[random.index("--config") + 1]).is_file()
        assert script == f"train_{task}.py"


@pytest.mark.parametrize("arch", ["vit", "convmae"])
def test_schedule_options_at_the_default_length_are_the_det_configs_own(arch):
    """--ft-iters stretches the schedule by overrides; at FT_ITERS they must leave each file as it is."""
    pytest.importorskip("detectron2")
    from detectron2.config import LazyConfig
    from omegaconf import OmegaConf

    path = str(ROOT / ft.CONFIGS["det", arch])
    own, overridden = LazyConfig.load(path), LazyConfig.apply_overrides(LazyConfig.load(path),
                                                                        ft.det_schedule_options(ft.FT_ITERS))
    for part in ("train", "lr_multiplier"):  # the parts the overrides set
        assert OmegaConf.to_container(overridden[part]) == OmegaConf.to_container(own[part]), part
    longer = LazyConfig.apply_overrides(LazyConfig.load(path), ft.det_schedule_options(1440))
    assert longer.train.max_iter == 1440 and list(longer.lr_multiplier.scheduler.milestones) == [1152, 1339]


@pytest.mark.parametrize("arch", ["vit", "convmae"])
def test_schedule_options_at_the_default_length_are_the_seg_configs_own(arch):
    pytest.importorskip("mmseg")
    from mmengine.config import Config, DictAction

    path = str(ROOT / ft.CONFIGS["seg", arch])
    own, overridden = Config.fromfile(path), Config.fromfile(path)
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg-options", nargs="+", action=DictAction)  # as tools/train_seg.py parses them
    overridden.merge_from_dict(parser.parse_args(["--cfg-options", *ft.seg_schedule_options(ft.FT_ITERS)]).cfg_options)
    assert overridden.to_dict() == own.to_dict()
    own.merge_from_dict(parser.parse_args(["--cfg-options", *ft.seg_schedule_options(1440)]).cfg_options)
    assert own.train_cfg.max_iters == own.param_scheduler[1]["end"] == 1440


def _finished_det_run(path: Path, iters: int) -> None:
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({"bbox": {"AP": 3.0}, "segm": {"AP": 2.0}}))
    (path / "config.yaml").write_text(f"train:\n  max_iter: {iters}\n")


def test_a_finished_run_of_another_length_is_not_reused(tmp_path):
    """A 480-iteration run must not join a table of 1440-iteration runs in the same --output."""
    for seed in (0,):
        for init in ("random_vit", "mae"):
            _finished_det_run(tmp_path / "det" / f"{init}_s{seed}", 480)
    calls = []
    args = argparse.Namespace(tasks=["det"], seeds=[0], fresh=False, quick=False, ft_iters=480)
    ft.finetune(args, lambda *a: calls.append(a), ["mae"], tmp_path / "data", tmp_path)
    assert calls == []  # the same length: reused
    with pytest.raises(ValueError):
        ft.finetune(argparse.Namespace(**{**vars(args), "ft_iters": 1440}), lambda *a: calls.append(a), ["mae"],
                    tmp_path / "data", tmp_path)
    assert calls == []


def test_collect_merges_det_and_seg_runs(tmp_path):
    det = tmp_path / "det" / "mae_s1"
    det.mkdir(parents=True)
    (det / "results.json").write_text(json.dumps({"bbox": {"AP": 3.0}, "segm": {"AP": 2.0}}))
    assert ft.collect(["mae"], [0, 1], tmp_path) == {"mae": {1: {"AP_box": 3.0, "AP_mask": 2.0}}}


def test_report_only_runs_no_step(tmp_path, monkeypatch):
    mini_repro = load_tool("mini_repro")
    calls = []
    monkeypatch.setattr(mini_repro, "run_tool", lambda *a: calls.append(a))
    with pytest.raises(UnfinishedStep):  # nothing finished in this --output: the first step is missing
        mini_repro.main(["--claim", "--report-only", "--output", str(tmp_path / "claim"), "--methods", "mae"])
    assert calls == [] and not (tmp_path / "claim" / "data").exists()
    for argv in (["--report-only"], ["--claim", "--report-only", "--fresh"]):  # it rebuilds --claim tables only
        with pytest.raises(SystemExit):
            mini_repro.parse_args(argv)


@pytest.mark.slow
def test_quick_claim_end_to_end(tmp_path):
    out = tmp_path / "claim"
    cmd = [sys.executable, str(ROOT / "tools" / "mini_repro.py"), "--claim", "--quick", "--output", str(out),
           "--methods", "mae"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*args):
        proc = subprocess.run([*cmd, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    run("--seeds", "0", "1", "--tasks", "cls")
    results = json.loads((out / "claim_results.json").read_text())
    assert set(results) == {"random_mae", "mae"} and all(set(r) == {"0", "1"} for r in results.values())
    assert set(results["mae"]["0"]) == {"knn@64", "linprobe@64", "knn@all", "linprobe@all"}
    assert results["mae"]["0"] != results["random_mae"]["0"]
    assert (out / "claim_seeds.png").stat().st_size > 0 and (out / "claim_knn.png").stat().st_size > 0
    config = json.loads((out / "pretrain" / "mae_s1" / "config.json").read_text())
    assert config["seed"] == 1 and config["model_kwargs"]["patch_size"] == 8
    assert not (out / "det").exists()  # --tasks cls fine-tunes nothing

    run("--seeds", "0", "--tasks", "det", "seg")  # data and pretraining reused, 2 det + 2 seg runs
    finetuned = json.loads((out / "claim_finetune.json").read_text())
    assert set(finetuned) == {"random_vit", "mae"}
    assert all(set(finetuned[init]["0"]) == {"AP_box", "AP_mask", "mIoU"} for init in finetuned)
    assert (out / "claim_finetune.png").stat().st_size > 0
    random_cfg, mae_cfg = ((out / "det" / f"{init}_s0" / "config.yaml").read_text()
                           .replace(str(out / "det" / f"{init}_s0"), "RUN_DIR") for init in ("random_vit", "mae"))
    differing = [(a, b) for a, b in zip(random_cfg.splitlines(), mae_cfg.splitlines()) if a != b]
    encoder = out / "pretrain" / "mae_s0" / "encoder.pth"
    assert differing == [("  init_checkpoint: ''", f"  init_checkpoint: {encoder}")]  # only the initial weights
    assert "patch_size: 8" in random_cfg and len(random_cfg.splitlines()) == len(mae_cfg.splitlines())
    for log, loaded in (("det_random_vit_s0.log", False), ("det_mae_s0.log", True), ("seg_mae_s0.log", True)):
        assert ("pretrain/mae_s0/encoder.pth" in (out / "logs" / log).read_text()) is loaded

    again = run("--seeds", "0")  # every task of seed 0 is there: nothing runs, both tables are written
    assert "$ " not in again and "mae − random_mae" in again and "mae − random_vit" in again
    table = (out / "claim_table.md").read_text()
    assert "$ " not in run("--seeds", "0", "--report-only") and (out / "claim_table.md").read_text() == table

    # --report-only never runs a missing step: seed 1 was not fine-tuned, and its frozen evaluation is removed
    (out / "eval" / "mae_s1.json").unlink()
    for args in (["--tasks", "det"], ["--tasks", "cls"]):
        proc = subprocess.run([*cmd, "--seeds", "1", "--report-only", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode != 0 and "UnfinishedStep" in proc.stderr
    assert not (out / "det" / "random_vit_s1").exists() and not (out / "eval" / "mae_s1.json").exists()


def test_a_detector_that_found_nothing_scores_zero_ap(tmp_path):
    """detectron2 reports NaN box AP and no mask AP when the model kept no detection; the table must count
    that seed as 0 AP, not NaN (which turned the seed mean into NaN)."""
    det = tmp_path / "det" / "random_vit_s1"
    (det / "inference").mkdir(parents=True)
    (det / "results.json").write_text(json.dumps({"bbox": {"AP": float("nan"), "AP50": float("nan")}}))
    (det / "inference" / "coco_instances_results.json").write_text("[]")
    assert ft.collect(["mae"], [1], tmp_path) == {"random_vit": {1: {"AP_box": 0.0, "AP_mask": 0.0}}}
