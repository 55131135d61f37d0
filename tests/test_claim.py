"""The claim's pieces (transfer/claim): the 2-std verdict and the table, pooled frozen features of every
method at its pretraining initialisation, and tools/mini_repro.py --claim --quick end to end (slow)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pretrain.config import load_config
from transfer.claim.frozen_eval import POOL, build_encoder
from transfer.claim.pipeline import METHODS, pretrain_overrides
from transfer.claim.report import Stat, beats, markdown_table

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


@pytest.mark.slow
def test_quick_claim_end_to_end(tmp_path):
    out = tmp_path / "claim"
    cmd = [sys.executable, str(ROOT / "tools" / "mini_repro.py"), "--claim", "--quick", "--output", str(out),
           "--methods", "mae", "--seeds", "0", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results = json.loads((out / "claim_results.json").read_text())
    assert set(results) == {"random_mae", "mae"} and all(set(r) == {"0", "1"} for r in results.values())
    assert set(results["mae"]["0"]) == {"knn@64", "linprobe@64", "knn@all", "linprobe@all"}
    assert results["mae"]["0"] != results["random_mae"]["0"]
    assert (out / "claim_seeds.png").stat().st_size > 0 and (out / "claim_knn.png").stat().st_size > 0
    config = json.loads((out / "pretrain" / "mae_s1" / "config.json").read_text())
    assert config["seed"] == 1 and config["model_kwargs"]["patch_size"] == 8
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "$ " not in again.stdout  # every step reused
