"""tools/train_seg.py options (issues 10 and 11): misspelled --cfg-options keys are refused with the known
keys named; paper rows start from their paper's checkpoint by name, --from-scratch starts without, and
the log says which; an encoder shallower than the row (our tiny pretraining export) is refused with a
message naming the flag that accepts it, and --allow-partial-weights loads it."""
from __future__ import annotations

import pytest
import torch

import transfer.seg  # noqa: F401
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules
from pretrain.models import build_model
from pretrain.weights import WeightsNotFoundError
from pretrain.checkpoints import PartialLoadError
from transfer.seg.run_options import UnknownOptionError
from transfer.seg.train import build_config, config_for_backbone
from transfer.toy_datasets import write_ade_toy
from tool_module import load_tool

register_all_modules(init_default_scope=True)


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> str:
    return str(write_ade_toy(tmp_path_factory.mktemp("ade"), num_train=2, num_val=1, size=64))


@pytest.mark.parametrize("key, bad, known", [
    ("modell.backbone.depth", "modell", "model"),  # a typo at the top: mmengine would add a new key
    ("train_cfg.max_itr", "max_itr", "max_iters"),  # an argument IterBasedTrainLoop does not take
    ("train_dataloader.batch_sise", "batch_sise", "batch_size"),
    ("model.decode_head.chanels", "chanels", "channels"),
])
def test_misspelled_cfg_options_are_refused_naming_known_keys(tmp_path, toy_root, key, bad, known):
    with pytest.raises(UnknownOptionError, match=rf"'{bad}'"):
        build_config(config_for_backbone("mae_vit_tiny"), dataset=toy_root, work_dir=str(tmp_path),
                     cfg_options={key: 2})


def test_valid_cfg_options_pass(tmp_path, toy_root):
    cfg = build_config(config_for_backbone("mae_vit_tiny"), dataset=toy_root, work_dir=str(tmp_path), cfg_options={
        "train_cfg.max_iters": 3, "model.backbone.depth": 2, "model.backbone.out_indices": [0, 1, 1, 1],
        "optim_wrapper.optimizer.lr": 2e-3, "test_pipeline.1.scale": [96, 96]})
    assert cfg.train_cfg.max_iters == 3 and cfg.model.backbone.depth == 2
    assert cfg.optim_wrapper.optimizer.lr == 2e-3 and list(cfg.test_pipeline[1].scale) == [96, 96]


@pytest.mark.parametrize("row, name", [("mae_vit_base", "mae_pretrain_vit_base"), ("sim_vit_base", "sim_vit_base"),
                                       ("convmae_base", "convmae_base")])
def test_paper_rows_start_from_their_checkpoint_unless_from_scratch(tmp_path, toy_root, row, name):
    cfg = build_config(config_for_backbone(row), dataset=toy_root, work_dir=str(tmp_path))
    assert cfg.model.backbone.init_cfg == dict(type="Pretrained", checkpoint=name, strict=True)
    assert not cfg.model.backbone.get("pretrained")
    cfg = build_config(config_for_backbone(row), dataset=toy_root, work_dir=str(tmp_path), from_scratch=True)
    assert not cfg.model.backbone.get("init_cfg") and not cfg.model.backbone.get("pretrained")
    with pytest.raises(ValueError):
        build_config(config_for_backbone(row), dataset=toy_root, work_dir=str(tmp_path), from_scratch=True,
                     weights="x.pth")


def test_weights_by_official_name_without_a_url_says_where_to_get_it(tmp_path, toy_root):
    with pytest.raises(WeightsNotFoundError, match="Alpha-VL/ConvMAE"):
        build_config(config_for_backbone("convmae_base"), dataset=toy_root, work_dir=str(tmp_path),
                     weights="convmae_base")


def test_toy_row_needs_no_flag(tmp_path, toy_root):
    cfg = build_config(config_for_backbone("mae_vit_tiny"), dataset=toy_root, work_dir=str(tmp_path))
    assert not cfg.model.backbone.get("init_cfg") and not cfg.model.backbone.get("pretrained")


def test_shallower_encoder_is_refused_naming_the_flag_and_the_flag_loads_it(tmp_path, toy_root):
    """Our tiny pretraining model (mae_vit_tiny: 2 blocks) into the toy row (4 blocks)."""
    torch.manual_seed(0)
    path = tmp_path / "encoder.pth"
    torch.save({"model": build_model("mae_vit_tiny").state_dict()}, path)

    cfg = build_config(config_for_backbone("mae_vit_tiny"), dataset=toy_root, work_dir=str(tmp_path), weights=str(path))
    with pytest.raises(PartialLoadError) as err:  # the tool names --allow-partial-weights (transfer.run_flags)
        MODELS.build(cfg.model).init_weights()
    assert {k.split(".")[1] for k in err.value.left_at_init} == {"2", "3"}

    cfg = build_config(config_for_backbone("mae_vit_tiny"), dataset=toy_root, work_dir=str(tmp_path), weights=str(path),
                       allow_partial_weights=True)
    model = MODELS.build(cfg.model)
    model.init_weights()
    report = model.backbone.load_report
    assert any(k.startswith("blocks.3.") for k in report.missing) and "blocks.0.attn.qkv.weight" in report.loaded


@pytest.mark.heavy
def test_train_seg_names_the_flag_for_a_shallower_encoder(tmp_path, toy_root):
    """The library raises PartialLoadError; the tool's message names --allow-partial-weights."""
    from tool_module import load_tool

    path = tmp_path / "encoder.pth"
    torch.save({"model": build_model("mae_vit_tiny").state_dict()}, path)
    with pytest.raises(SystemExit) as exit_:
        load_tool("train_seg").main(["--backbone", "mae_vit_tiny", "--dataset", toy_root, "--weights", str(path),
                                     "--work-dir", str(tmp_path / "work")])
    assert "--allow-partial-weights" in str(exit_.value.code)


def test_weights_and_from_scratch_together_are_a_usage_error_not_a_traceback(capsys):
    """Both transfer tools refuse --weights with --from-scratch through pretrain.weights.choose_weights
    (train_seg raised a bare ValueError traceback before)."""
    for tool in ("train_seg", "train_det"):
        with pytest.raises(SystemExit) as exit_info:
            load_tool(tool).parse_args(["--backbone", "mae_vit_tiny", "--weights", "x.pth", "--from-scratch"])
        assert exit_info.value.code == 2
        assert "--from-scratch" in capsys.readouterr().err
