"""One name per encoder: pretrain/encoders.py names it once; every registry, tool and config reads it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pretrain.encoders import ENCODERS, OFFICIAL_WEIGHTS, RETIRED_NAMES, paper_rows
from pretrain.models import build_model, list_models
from transfer.backbones import build_backbone, list_backbones

ROOT = Path(__file__).resolve().parents[1]


def test_every_encoder_builds_under_its_one_name():
    assert set(list_models()) == set(ENCODERS)
    assert set(list_backbones()) == {name for name, e in ENCODERS.items() if e.backbone}
    for e in ENCODERS.values():
        assert e.weights is None or e.weights in OFFICIAL_WEIGHTS, e
    for task in ("det", "seg"):
        for row, config in paper_rows(task).items():
            assert (ROOT / "configs" / task / config).is_file(), (row, config)


@pytest.mark.parametrize("old", sorted(RETIRED_NAMES))
def test_retired_names_are_refused_with_the_new_one(old):
    new = RETIRED_NAMES[old].split()[0]
    for build in (build_model, build_backbone):
        with pytest.raises(KeyError, match=new):
            build(old)


def test_settings_live_in_the_table_only():
    """ViTDet's and ConvViTDet's window / global blocks / drop path are written in the table, not in the
    backbone classes' defaults or the detection configs."""
    built = build_backbone("mae_vit_base", img_size=224)
    assert built.window_sizes == [14, 14, 0, 14, 14, 0, 14, 14, 0, 14, 14, 0]
    assert build_backbone("convmae_base", img_size=256).global_blocks == (0, 3, 6, 10)
    for path in (ROOT / "configs" / "det").rglob("*.py"):
        if path.name.startswith("toy_"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            assert not (isinstance(node, ast.keyword) and node.arg in {"window_size", "global_blocks"}), path
            assert not (isinstance(node, ast.Attribute) and node.attr in {"window_size", "global_blocks"}), path


def test_tools_and_frameworks_take_the_table_names():
    from transfer.det.configs import BACKBONE_CONFIGS
    from transfer.seg.train import BACKBONE_CONFIGS as SEG_CONFIGS

    assert set(BACKBONE_CONFIGS) == set(paper_rows("det")) and set(SEG_CONFIGS) == set(paper_rows("seg"))
    assert all(row in ENCODERS or row.split("_100ep")[0] in ENCODERS for row in BACKBONE_CONFIGS)
