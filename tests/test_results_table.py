"""tools/results_table.py on fixture outputs (tests/data/results): a detectron2 dir with metrics.json only,
one with our results.json mapped to a paper row by DIR=ROW, an mmseg work dir (scalars.json + the
dumped config naming its row), and a dir without evaluation."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from transfer.results import collect_run, format_csv, format_markdown, load_paper_results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "results")


def test_paper_results_have_sources_and_the_issue_numbers():
    paper = load_paper_results()
    for key, row in paper.items():
        assert row["source"] and row["url"].startswith("https://"), key
        assert row["task"] in ("det", "seg", "cls"), key
    expected = {
        "mae_paper_mask_rcnn_vit_b": (50.3, 44.9), "mask_rcnn_vitdet_mae_b_100ep": (51.6, 45.9),
        "mask_rcnn_convmae_b_fpn_25ep": (53.2, 47.1), "mask_rcnn_vitdet_sim_b_100ep": (52.1, 46.2),
    }
    for key, (box, mask) in expected.items():
        assert (paper[key]["AP_box"], paper[key]["AP_mask"]) == (box, mask), key
    assert paper["upernet_mae_vit_base_512_160k_ade20k"]["mIoU"] == 48.1
    assert paper["upernet_convmae_base_512_160k_ade20k"]["mIoU"] == 51.7
    assert paper["upernet_sim_vit_base_512_160k_ade20k"]["mIoU"] == 51.1
    cls = {"mae_vit_base_finetune": 83.6, "mae_vit_large_finetune": 85.9, "mae_vit_huge_finetune": 86.9,
           "mae_vit_base_linprobe": 68.0, "mae_vit_large_linprobe": 75.8, "mae_vit_huge_linprobe": 76.6,
           "convmae_base_finetune": 85.0, "convmae_base_linprobe": 70.9, "sim_vit_base_finetune": 84.1,
           "sim_vit_base_linprobe": 78.0, "sim_vit_base_fewshot": 65.1}
    assert {key: paper[key]["acc1"] for key in cls} == cls


def test_rows_from_fixture_outputs():
    det = collect_run(os.path.join(DATA, "mask_rcnn_vitdet_mae_b_100ep"))
    assert (det["task"], det["row"], det["backbone"]) == ("det", "mask_rcnn_vitdet_mae_b_100ep", "ViT-B")
    assert (det["AP_box"], det["AP_mask"]) == (51.41, 45.62)  # the last evaluation record
    assert (det["diff_AP_box"], det["diff_AP_mask"]) == (-0.19, -0.28)
    assert det["mIoU"] is None and det["paper_mIoU"] is None

    conv = collect_run(os.path.join(DATA, "my_convmae_run"), row="mask_rcnn_convmae_b_fpn_25ep")
    assert (conv["AP_box"], conv["paper_AP_box"], conv["diff_AP_box"]) == (53.55, 53.2, 0.35)

    seg = collect_run(os.path.join(DATA, "upernet_mae_vit_base_512_160k_ade20k"))
    assert (seg["task"], seg["mIoU"], seg["paper_mIoU"], seg["diff_mIoU"]) == ("seg", 48.35, 48.1, 0.25)

    with pytest.raises(FileNotFoundError, match="empty_run"):
        collect_run(os.path.join(DATA, "empty_run"))


def test_markdown_and_csv():
    rows = [collect_run(os.path.join(DATA, "mask_rcnn_vitdet_mae_b_100ep")),
            collect_run(os.path.join(DATA, "upernet_mae_vit_base_512_160k_ade20k"))]
    md = format_markdown(rows).splitlines()
    assert md[0] == ("| run | backbone | pretraining | schedule | AP_box ours / paper (diff) | "
                     "AP_mask ours / paper (diff) | mIoU ours / paper (diff) |")
    assert md[2] == ("| mask_rcnn_vitdet_mae_b_100ep | ViT-B | MAE IN1K 1600 ep | ViTDet Mask R-CNN, LSJ 1024, 100 ep"
                     " | 51.4 / 51.6 (-0.2) | 45.6 / 45.9 (-0.3) | - |")
    assert md[3].endswith("| - | - | 48.4 / 48.1 (+0.2) |")
    csv_lines = format_csv(rows).splitlines()
    assert csv_lines[0].startswith("run,row,task,backbone,pretraining,schedule,AP_box,paper_AP_box,diff_AP_box,")
    assert ",51.41,51.6,-0.19,45.62,45.9,-0.28,,," in csv_lines[1]


def test_cli(tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, "tools", "results_table.py"),
           os.path.join(DATA, "my_convmae_run") + "=mask_rcnn_convmae_b_fpn_25ep",
           os.path.join(DATA, "upernet_mae_vit_base_512_160k_ade20k"), "--csv", str(tmp_path / "t.csv")]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "| my_convmae_run | ConvMAE-B | ConvMAE IN1K 1600 ep |" in run.stdout
    assert "53.5 / 53.2 (+0.3)" in run.stdout or "53.6 / 53.2 (+0.3)" in run.stdout
    assert (tmp_path / "t.csv").read_text().count("\n") == 3
    run = subprocess.run(cmd[:2] + [os.path.join(DATA, "empty_run")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 1 and "empty_run" in run.stderr and "Traceback" not in run.stderr


def test_run_info_names_the_row(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"bbox": {"AP": 1.5}, "segm": {"AP": 0.5}}))
    (tmp_path / "run_info.json").write_text(json.dumps(
        {"row": "mini_repro_det", "backbone": "ViT-tiny", "pretraining": "MAE toy", "schedule": "200 it"}))
    row = collect_run(tmp_path)
    assert (row["row"], row["backbone"], row["pretraining"], row["AP_box"], row["paper_AP_box"]) == (
        "mini_repro_det", "ViT-tiny", "MAE toy", 1.5, None)


def test_classification_run_beside_its_paper_row(tmp_path):
    run = tmp_path / "mae_vit_base_finetune"  # tools/train_cls.py's default output dir name is the row
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"acc1": 83.5, "acc5": 96.4, "protocol": "finetune"}))
    row = collect_run(run)
    assert (row["task"], row["acc1"], row["paper_acc1"], row["diff_acc1"]) == ("cls", 83.5, 83.6, -0.1)
    assert format_markdown([row]).splitlines()[2].endswith("| 83.5 / 83.6 (-0.1) |")


def test_a_detector_that_found_nothing_scores_zero_ap(tmp_path):
    """detectron2 writes NaN box AP and no mask AP when the model kept no detection (it skips COCO
    evaluation); the table reads the saved detections and shows 0 AP, as COCO defines it, not NaN."""
    run = tmp_path / "mask_rcnn_vitdet_mae_b_100ep"
    (run / "inference").mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"bbox": {"AP": float("nan"), "AP50": float("nan")}}))
    (run / "inference" / "coco_instances_results.json").write_text("[]")
    row = collect_run(run)
    assert (row["AP_box"], row["AP_mask"], row["diff_AP_box"]) == (0.0, 0.0, -51.6)
