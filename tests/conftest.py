"""Fixtures shared by several test files, and the test tiers (``bash scripts/test.sh --fast``)."""
from __future__ import annotations

import pytest
import torch

from transfer.framework_warnings import quiet_framework_warnings

# The fast tier (``bash scripts/test.sh --fast``, < 5 minutes on 2 cores) leaves out `slow` tests and
# `heavy` ones: those that train or evaluate through detectron2 / mmengine, start processes (tools,
# gloo groups: 10-60 s each under load). Marked here, in one place: whole files, then single tests.
HEAVY_FILES = {
    "test_det_distributed.py", "test_det_paper_rows.py", "test_seg_distributed.py", "test_seg_mmseg_mae.py",
    "test_seg_paper_rows.py", "test_seg_resume.py", "test_seg_train.py", "test_seg_weights_formats.py",
    "test_pretrain_resume.py", "test_mini_repro.py", "test_visualize.py", "test_perf_bench.py",
}
HEAVY_TESTS = {
    "test_checkpoint_io.py": {
        "test_train_det_weights_refuses_crafted_file", "test_visualize_det_refuses_crafted_file",
        "test_convert_checkpoint_refuses_crafted_file", "test_train_seg_weights_refuses_crafted_file",
        "test_train_det_weights_clear_errors", "test_train_seg_weights_refuses_training_checkpoint_with_what_to_do",
        "test_convert_checkpoint_refuses_training_checkpoint_with_what_to_do",
        "test_detectron2_vitdet_detector_through_train_det_cli", "test_checkpoint_leaving_backbone_at_init_is_an_error",
        "test_our_own_detector_checkpoints_load_every_parameter", "test_pretrain_resume_refuses_crafted_file",
        "test_export_and_recon_read_a_real_training_checkpoint", "test_resume_refuses_an_encoder_export_with_what_to_do",
    },
    "test_cls_tool.py": {"test_two_processes_gloo"},
    "test_convert.py": {"test_convert_checkpoint_cli"},
    "test_det.py": {"test_missing_dataset_is_a_clear_error"},
    "test_install.py": {"test_no_tool_shadows_a_package_and_tools_run_as_scripts"},
    "test_pretrain_train.py": {"test_export_then_load_round_trip"},
    "test_rank_agreement.py": {"test_two_processes_agree_or_the_check_raises"},
    "test_runs.py": {
        "test_segmentation_checkpoints_are_never_visible_half_written", "test_detection_refuses_a_used_output_and_one_in_use",
        "test_segmentation_refuses_a_used_work_dir_and_one_in_use",
    },
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = item.path.name
        if name in HEAVY_FILES or item.originalname in HEAVY_TESTS.get(name, ()):
            item.add_marker(pytest.mark.heavy)


def pytest_collection() -> None:
    """The filters the tools install (transfer/framework_warnings.py), inside pytest's warning capture of the
    collection, when the test modules import the frameworks."""
    quiet_framework_warnings()


def pytest_runtest_setup() -> None:
    """The filters the tools install, inside pytest's warning capture of each test (fixtures of any scope)."""
    quiet_framework_warnings()


@pytest.fixture
def one_thread():
    """2 shared CPU cores: intra-op threads only oversubscribe them (measured 5-20x slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
