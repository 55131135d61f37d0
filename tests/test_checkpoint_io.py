"""Reading checkpoint files never runs code from them, and bad files get clear errors (issue 11), through
``pretrain.checkpoints`` and through every command-line tool that reads a file a user passes in.

A crafted file whose unpickling calls ``os.system`` (it would write a marker file) is refused by every
tool with a message naming the offending global, and the marker is never written. Zero-byte, truncated,
non-checkpoint files and checkpoints of the wrong kind get a message saying what to do, not a traceback.
"""
from __future__ import annotations

import argparse
import collections
import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pretrain.checkpoints import (
    CheckpointError, CheckpointKind, PartialLoadError, atomic_save, classify_checkpoint, expect_kind, read_checkpoint,
    require_loaded, state_dict_of,
)
from transfer.run_flags import PARTIAL_WEIGHTS_FLAG, user_error

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


class WritesFile:
    """Unpickled with plain pickle (or torch.load(weights_only=False)), this runs a shell command that
    writes ``marker``: what a malicious checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"echo pwned > {shlex.quote(str(self.marker))}",)


def _crafted(tmp_path: Path, fmt: str) -> tuple[Path, Path]:
    """(crafted checkpoint, marker it would write). fmt: 'pth' (torch zip), 'legacy' (torch's old
    format), 'pkl' (detectron2's .pkl model format: numpy arrays under 'model')."""
    marker = tmp_path / f"pwned_{fmt}"
    if fmt == "pkl":
        path = tmp_path / "model_final_crafted.pkl"
        model = {"backbone.net.pos_embed": np.zeros((1, 17, 96), np.float32), "roi_heads.x": np.zeros(2, np.float32)}
        with open(path, "wb") as f:
            pickle.dump({"model": model, "__author__": "Detectron2 Model Zoo", "x": WritesFile(marker)}, f)
    else:
        path = tmp_path / f"crafted_{fmt}.pth"
        obj = {"model": {"blocks.0.norm1.weight": torch.ones(4)}, "x": WritesFile(marker)}
        torch.save(obj, path, _use_new_zipfile_serialization=fmt == "pth")
    return path, marker


CRAFTED = ["pth", "legacy", "pkl"]
REFUSED = r"\bsystem\b"  # the refused global its pickle names


@pytest.mark.parametrize("fmt", CRAFTED)
def test_crafted_file_runs_code_with_plain_pickle(tmp_path, fmt):
    """The crafted files are live: an unrestricted load writes the marker (so the tests below can fail)."""
    path, marker = _crafted(tmp_path, fmt)
    if fmt == "pkl":
        with open(path, "rb") as f:
            pickle.load(f)
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("fmt", CRAFTED)
def test_read_checkpoint_refuses_crafted_file(tmp_path, fmt):
    path, marker = _crafted(tmp_path, fmt)
    with pytest.raises(CheckpointError, match=REFUSED):
        read_checkpoint(path)
    assert not marker.exists()


class FetchesAttribute:
    """Pickles as ``getattr(numpy.ndarray, 'tofile')``: both names are allowed on their own (mmengine's
    checkpoints need ``getattr`` for HistoryBuffer's statistics), this use is not."""

    def __reduce__(self):
        return getattr, (np.ndarray, "tofile")


def test_getattr_only_for_history_buffer_statistics(tmp_path):
    torch.save({"model": {}, "x": FetchesAttribute()}, tmp_path / "getattr.pth")
    with pytest.raises(CheckpointError, match="tofile"):
        read_checkpoint(tmp_path / "getattr.pth")


def test_read_checkpoint_clear_errors(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"model": {"blocks.0.w": torch.ones(1000)}}, good)
    data = good.read_bytes()
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    pkl = pickle.dumps({"model": {"a": np.ones(1000, np.float32)}, "__author__": "x"})
    (tmp_path / "truncated.pkl").write_bytes(pkl[: len(pkl) // 2])
    (tmp_path / "notes.pth").write_text("not a checkpoint\n")
    (tmp_path / "image.pth").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(100))
    for name in ("missing.pth", "empty.pth", "truncated.pth", "truncated.pkl", "notes.pth", "image.pth"):
        with pytest.raises(CheckpointError, match=name):  # ours, naming the file (not EOFError, BadZipFile, ...)
            read_checkpoint(tmp_path / name)
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path)  # a directory


def test_reads_what_tools_and_frameworks_write(tmp_path):
    """Our training state (RNG states: numpy arrays), official training files (argparse.Namespace),
    detectron2 .pkl models (numpy arrays, OrderedDict; numpy 1 and numpy 2 module names)."""
    import random

    state = {"model": {"blocks.0.w": torch.ones(2)}, "optimizer": {"state": {}}, "config": {"model": "x", "t": (1, 2)},
             "rng": [{"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}],
             "scaler": {}, "epoch": 1, "lr": np.float64(0.5)}
    atomic_save(state, tmp_path / "checkpoint-00000001.pth")
    got = read_checkpoint(tmp_path / "checkpoint-00000001.pth")
    assert np.array_equal(got["rng"][0]["numpy"][1], state["rng"][0]["numpy"][1]) and got["lr"] == 0.5
    assert classify_checkpoint(got) is CheckpointKind.TRAINING_STATE
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-00000001.pth"]  # no temporary file left

    torch.save({"model": {"blocks.0.w": torch.ones(2)}, "args": argparse.Namespace(model="mae_vit_base")},
               tmp_path / "official.pth")
    assert read_checkpoint(tmp_path / "official.pth")["args"].model == "mae_vit_base"

    model = collections.OrderedDict([("backbone.net.blocks.0.attn.qkv.weight", np.arange(6, dtype=np.float32))])
    obj = {"model": model, "__author__": "Detectron2 Model Zoo"}
    raw = pickle.dumps(obj, protocol=2)  # module names as text lines: numpy 2's names swap in
    blobs = {"p2.pkl": raw, "p4.pkl": pickle.dumps(obj, protocol=4),
             "numpy2.pkl": raw.replace(b"numpy.core.multiarray", b"numpy._core.multiarray")}
    for name, blob in blobs.items():
        (tmp_path / name).write_bytes(blob)
        sd = state_dict_of(read_checkpoint(tmp_path / name))
        torch.testing.assert_close(sd["backbone.net.blocks.0.attn.qkv.weight"], torch.arange(6.0))


def test_classify_checkpoint():
    from pretrain.models import build_model

    mae = build_model("mae_vit_tiny")
    cases = [
        ({"model": mae.state_dict()}, CheckpointKind.MAE),
        ({"model": mae.encoder_state_dict()}, CheckpointKind.ENCODER),
        ({"model": build_model("sim_vit_tiny").state_dict()}, CheckpointKind.SIM),
        ({"model": build_model("convmae_tiny").state_dict()}, CheckpointKind.CONVMAE),
        ({"model": {"backbone.net.net.blocks.0.w": 0}, "__author__": "transfer.convert"}, CheckpointKind.ENCODER),
        ({"model": {"backbone.net.blocks.0.w": 0, "roi_heads.box_predictor.w": 0}}, CheckpointKind.DETECTRON2),
        ({"state_dict": {"backbone.net.blocks.0.w": 0, "decode_head.conv_seg.w": 0}, "meta": {}}, CheckpointKind.MMSEG),
        ({"model": {}, "optimizer": {}, "config": {}, "rng": []}, CheckpointKind.TRAINING_STATE),
        ({"fc.weight": torch.zeros(1)}, CheckpointKind.UNKNOWN),
        ([1, 2], CheckpointKind.UNKNOWN),
    ]
    for obj, kind in cases:
        assert classify_checkpoint(obj) is kind, (list(obj)[:2], kind)


def test_wrong_kind_and_partial_loads_say_what_to_do():
    training = {"model": {}, "optimizer": {}, "config": {}, "rng": []}
    with pytest.raises(CheckpointError, match="--export"):
        expect_kind(training, "ck.pth", [CheckpointKind.ENCODER], "a pretraining checkpoint")
    left = ["blocks.0.norm1.weight", "blocks.1.norm1.weight", "pos_embed"]
    with pytest.raises(PartialLoadError) as err:
        require_loaded(left, "x.pth", allow_partial=False)
    assert err.value.left_at_init == left and err.value.source == "x.pth"
    assert isinstance(err.value, CheckpointError)  # tools catch CheckpointError
    assert PARTIAL_WEIGHTS_FLAG in user_error(err.value)  # the tools name the flag that accepts it
    assert PARTIAL_WEIGHTS_FLAG not in user_error(CheckpointError("x.pth is empty"))
    require_loaded(["pos_embed"], "x.pth", allow_partial=True)


# ---- every tool that reads a file ---------------------------------------------------------------
def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=300)


def _assert_refused(run: subprocess.CompletedProcess, marker: Path, message: str = REFUSED) -> None:
    import re

    assert not marker.exists(), "the crafted checkpoint ran code"
    assert run.returncode != 0, run.stdout[-2000:]
    assert re.search(message, run.stderr, re.S), run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "Warning:" not in run.stderr, run.stderr[-3000:]  # no framework warning (transfer/framework_warnings.py)


def _tool(name: str) -> str:
    return str(ROOT / "tools" / name)


@pytest.mark.parametrize("fmt", ["pth", "legacy"])
def test_pretrain_export_refuses_crafted_file(tmp_path, fmt):
    path, marker = _crafted(tmp_path, fmt)
    run = _run(_tool("train_mim.py"), "--export", str(path), "--output", str(tmp_path / "enc.pth"), cwd=tmp_path)
    _assert_refused(run, marker)
    assert not (tmp_path / "enc.pth").exists()


def test_pretrain_resume_refuses_crafted_file(tmp_path):
    from pretrain_toy import config_path, write_images

    path, marker = _crafted(tmp_path, "pth")
    data = write_images(str(tmp_path / "data"), 4, 64)
    run = _run(_tool("train_mim.py"), "--config", config_path("mae_tiny_toy.py"), "--data", data,
               "--output", str(tmp_path / "out"), "--resume-from", str(path), "epochs=1", cwd=tmp_path)
    _assert_refused(run, marker)
    assert not list((tmp_path / "out").glob("checkpoint-*.pth"))


def test_visualize_recon_refuses_crafted_file(tmp_path):
    from pretrain_toy import write_images

    path, marker = _crafted(tmp_path, "pth")
    image = next(Path(write_images(str(tmp_path / "data"), 1, 64)).rglob("*.png"))
    run = _run(_tool("visualize.py"), "recon", "--checkpoint", str(path), "--image", str(image),
               "--out", str(tmp_path / "rec.png"), cwd=tmp_path)
    _assert_refused(run, marker)
    assert not (tmp_path / "rec.png").exists()


@pytest.fixture(scope="module")
def training_checkpoint(tmp_path_factory) -> Path:
    """A real training checkpoint of tools/train_mim.py (tiny MAE, 1 iteration)."""
    from pretrain_toy import config_path, write_images

    from pretrain.config import load_config
    from pretrain.engine import train

    tmp = tmp_path_factory.mktemp("pretrain")
    data = write_images(str(tmp / "data"), 4, 64)
    cfg = load_config(config_path("mae_tiny_toy.py"), ["max_iters=1", "epochs=1", "vis_every_epochs=0"],
                      data=data, output_dir=str(tmp / "out"))
    train(cfg)
    return sorted((tmp / "out").glob("checkpoint-*.pth"))[-1]


def test_export_and_recon_read_a_real_training_checkpoint(tmp_path, training_checkpoint):
    """The allow-list is wide enough for what our own tools write (RNG states, config)."""
    from pretrain_toy import write_images

    run = _run(_tool("train_mim.py"), "--export", str(training_checkpoint), "--output", str(tmp_path / "enc.pth"),
               cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert classify_checkpoint(read_checkpoint(tmp_path / "enc.pth")) is CheckpointKind.ENCODER
    image = next(Path(write_images(str(tmp_path / "data"), 1, 64)).rglob("*.png"))
    run = _run(_tool("visualize.py"), "recon", "--checkpoint", str(training_checkpoint), "--image", str(image),
               "--out", str(tmp_path / "rec.png"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "rec.png").stat().st_size > 0


def test_resume_refuses_an_encoder_export_with_what_to_do(tmp_path, training_checkpoint):
    from pretrain.train_state import export_encoder

    encoder = export_encoder(str(training_checkpoint), str(tmp_path / "encoder.pth"))
    run = _run(_tool("train_mim.py"), "--export", encoder, "--output", str(tmp_path / "again.pth"), cwd=tmp_path)
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "encoder.pth" in run.stderr  # the file it refused


# ---- detectron2 / mmseg tools (need the frameworks) -----------------------------------------------
def _d2():
    pytest.importorskip("detectron2")


def _mmseg():
    pytest.importorskip("mmseg")


TRAIN_DET = ["--backbone", "mae_vit_tiny", "--dataset", "toy", "--num-gpus", "0", "train.max_iter=1"]


@pytest.mark.parametrize("fmt", ["pth", "pkl"])
def test_train_det_weights_refuses_crafted_file(tmp_path, fmt):
    _d2()
    path, marker = _crafted(tmp_path, fmt)
    run = _run(_tool("train_det.py"), "--weights", str(path), "--output", str(tmp_path / "out"), *TRAIN_DET,
               cwd=tmp_path)
    _assert_refused(run, marker)


def test_visualize_det_refuses_crafted_file(tmp_path):
    _d2()
    path, marker = _crafted(tmp_path, "pkl")
    run = _run(_tool("visualize.py"), "det", "--backbone", "mae_vit_tiny", "--weights", str(path), "--dataset", "toy",
               "--image", str(tmp_path / "none.jpg"), "--out", str(tmp_path / "det.png"), cwd=tmp_path)
    _assert_refused(run, marker)


@pytest.mark.parametrize("to", ["detectron2", "mmseg"])
def test_convert_checkpoint_refuses_crafted_file(tmp_path, to):
    _d2() if to == "detectron2" else _mmseg()
    path, marker = _crafted(tmp_path, "pth")
    run = _run(_tool("convert_checkpoint.py"), str(path), str(tmp_path / "o.pth"), "--to", to, "--backbone",
               "mae_vit_tiny", cwd=tmp_path)
    _assert_refused(run, marker)
    assert not (tmp_path / "o.pth").exists()


@pytest.mark.parametrize("fmt", ["pth", "pkl"])
def test_train_seg_weights_refuses_crafted_file(tmp_path, fmt):
    _mmseg()
    path, marker = _crafted(tmp_path, fmt)
    run = _run(_tool("train_seg.py"), "--backbone", "mae_vit_tiny", "--dataset", "toy", "--weights", str(path),
               "--work-dir", str(tmp_path / "work"), cwd=tmp_path)
    _assert_refused(run, marker)


def _bad_weights(tmp_path: Path, case: str, training_checkpoint: Path) -> tuple[Path, str]:
    """(file, expected message) for the --weights clear-error cases."""
    if case == "training":
        return training_checkpoint, r"found a tools/train_mim.py training checkpoint.*tools/train_mim.py --export"
    good = tmp_path / "good.pth"
    torch.save({"model": {"blocks.0.w": torch.ones(1000)}}, good)
    path = tmp_path / f"{case}.pth"
    if case == "empty":
        path.write_bytes(b"")
        return path, r"is empty \(0 bytes\)"
    if case == "truncated":
        path.write_bytes(good.read_bytes()[:500])
        return path, r"could not be read \(not a complete torch zip archive"
    path.write_text("a text file\n")
    return path, r"could not be read \(not a pickle or a torch file"


@pytest.mark.parametrize("case", ["empty", "truncated", "text", "training"])
def test_train_det_weights_clear_errors(tmp_path, case, training_checkpoint):
    _d2()
    path, message = _bad_weights(tmp_path, case, training_checkpoint)
    run = _run(_tool("train_det.py"), "--weights", str(path), "--output", str(tmp_path / "out"), *TRAIN_DET,
               cwd=tmp_path)
    _assert_refused(run, tmp_path / "no-marker", message)


def test_train_seg_weights_refuses_training_checkpoint_with_what_to_do(tmp_path, training_checkpoint):
    _mmseg()
    path, message = _bad_weights(tmp_path, "training", training_checkpoint)
    run = _run(_tool("train_seg.py"), "--backbone", "mae_vit_tiny", "--dataset", "toy", "--weights", str(path),
               "--work-dir", str(tmp_path / "work"), cwd=tmp_path)
    _assert_refused(run, tmp_path / "no-marker", message)


def test_convert_checkpoint_refuses_training_checkpoint_with_what_to_do(tmp_path, training_checkpoint):
    _d2()
    run = _run(_tool("convert_checkpoint.py"), str(training_checkpoint), str(tmp_path / "o.pth"), "--to",
               "detectron2", "--backbone", "mae_vit_tiny", cwd=tmp_path)
    _assert_refused(run, tmp_path / "no-marker", r"training checkpoint.*tools/train_mim.py --export")


# ---- issue 10 defect 4: detectron2-format ViTDet detectors load completely ---------------------------
TOY_VITDET = ROOT / "configs" / "det" / "toy_vitdet_tiny.py"


def _toy_detector():
    from detectron2.config import LazyConfig, instantiate

    return instantiate(LazyConfig.load(str(TOY_VITDET)).model)


def _detectron2_vitdet_pkl(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A whole ViTDet detector in detectron2's own format, as its released model_final_*.pkl: the trunk is
    detectron2's own ``ViT`` (built tiny with the toy row's sizes) under ``backbone.net.*``, the neck and
    heads under their names, numpy arrays under 'model'. Returns (file, the ViT's state dict)."""
    from detectron2.modeling import ViT

    torch.manual_seed(0)
    vit = ViT(img_size=192, patch_size=16, embed_dim=96, depth=2, num_heads=3, window_size=4,
              window_block_indexes=[0], use_rel_pos=True, pretrain_img_size=64, drop_path_rate=0.0,
              out_feature="last_feat")
    with torch.no_grad():  # non-trivial values everywhere (rel-pos tables start at zero)
        for p in vit.parameters():
            p.add_(torch.randn_like(p))
    model = {k: v.numpy() for k, v in _toy_detector().state_dict().items() if not k.startswith("backbone.net.")}
    model.update({f"backbone.net.{k}": v.numpy() for k, v in vit.state_dict().items()})
    path = tmp_path / "model_final_vitdet_tiny.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": model, "__author__": "Detectron2 Model Zoo"}, f)
    return path, vit.state_dict()


def test_detectron2_vitdet_detector_loads_every_trunk_parameter(tmp_path):
    _d2()
    from transfer.det.engine import load_weights

    path, trunk = _detectron2_vitdet_pkl(tmp_path)
    model = _toy_detector()
    load_weights(model, str(path))
    own = model.state_dict()
    assert {f"backbone.net.net.{k}" for k in trunk} <= set(own)
    for key, value in trunk.items():
        torch.testing.assert_close(own[f"backbone.net.net.{key}"], value, rtol=0, atol=0, msg=key)


def test_detectron2_vitdet_detector_through_train_det_cli(tmp_path):
    _d2()
    path, _ = _detectron2_vitdet_pkl(tmp_path)
    run = _run(_tool("train_det.py"), "--config", str(TOY_VITDET), "--weights", str(path), "--eval-only",
               "--dataset", "toy", "--num-gpus", "0", "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert "detectron2 detector checkpoint" in log
    assert "backbone.net.net.blocks" not in log, "trunk parameters reported missing / skipped"


def test_checkpoint_leaving_backbone_at_init_is_an_error(tmp_path):
    _d2()
    from pretrain.models import build_model
    from transfer.det.engine import load_weights

    shallow = build_model("mae_vit_tiny", depth=1).encoder_state_dict()  # the toy row has 2 blocks
    torch.save({"model": shallow}, tmp_path / "shallow.pth")
    run = _run(_tool("train_det.py"), "--weights", str(tmp_path / "shallow.pth"), "--output", str(tmp_path / "out"),
               *TRAIN_DET, cwd=tmp_path)
    _assert_refused(run, tmp_path / "no-marker",
                    r"leaves 12 backbone parameters at their initial values, first: backbone.net.net.blocks.1."
                    r".*rel_pos_h / rel_pos_w.*are expected to stay at init.*--allow-partial-weights")
    model = _toy_detector()
    load_weights(model, str(tmp_path / "shallow.pth"), allow_partial=True)  # asked for: loads block 0
    torch.testing.assert_close(model.state_dict()["backbone.net.net.blocks.0.attn.qkv.weight"],
                               shallow["blocks.0.attn.qkv.weight"])

    # a detector whose trunk sits under keys no mapping knows leaves the whole trunk at init
    path, trunk = _detectron2_vitdet_pkl(tmp_path)
    obj = read_checkpoint(path)
    obj["model"] = {k.replace("backbone.net.", "backbone.trunk."): v for k, v in obj["model"].items()}
    with open(path, "wb") as f:
        pickle.dump(obj, f)
    with pytest.raises(CheckpointError, match=r"backbone\.net\.net\.blocks"):
        load_weights(_toy_detector(), str(path))


@pytest.mark.parametrize("config", ["toy_vitdet_tiny.py", "toy_convmae_tiny.py"])
def test_our_own_detector_checkpoints_load_every_parameter(tmp_path, config):
    """A detector written by tools/train_det.py (trunk under backbone.net.net.* / backbone.bottom_up.net.*)
    comes back whole through the same --weights path."""
    _d2()
    from detectron2.config import LazyConfig, instantiate

    from transfer.det.engine import load_weights

    cfg = LazyConfig.load(str(ROOT / "configs" / "det" / config))
    torch.manual_seed(0)
    trained = instantiate(cfg.model)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p))
    atomic_save({"model": trained.state_dict(), "iteration": 9}, tmp_path / "model_final.pth")
    fresh = instantiate(cfg.model)
    assert load_weights(fresh, str(tmp_path / "model_final.pth")) is CheckpointKind.DETECTRON2
    got = fresh.state_dict()
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the resident set size from /proc")
def test_mmap_reads_map_a_zip_files_tensors_instead_of_reading_them(tmp_path):
    """read_checkpoint(mmap=True) (train_seg's look at a --weights file before mmengine reads it again):
    the same values, and reading a 128 MiB file adds almost nothing to the process's memory; legacy-format
    files are read as usual."""
    path = str(tmp_path / "seg.pth")
    torch.save({"state_dict": {"backbone.w": torch.arange(32 * 2**20, dtype=torch.int32)}}, path)
    before = _rss_mib()
    mapped = read_checkpoint(path, mmap=True)
    assert _rss_mib() - before < 32
    assert mapped["state_dict"]["backbone.w"][-1].item() == 32 * 2**20 - 1
    legacy = str(tmp_path / "legacy.pth")
    torch.save({"w": torch.ones(3)}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(read_checkpoint(legacy, mmap=True)["w"], torch.ones(3))
