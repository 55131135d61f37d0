"""Distributed segmentation (transfer/seg/distributed.py): 2 gloo processes x batch 2 end with the
parameters of 1 process x batch 2 x ``optim_wrapper.accumulative_counts=2``, through the real
tools/train_seg.py on the toy row; a sample's augmentation does not depend on the world size, the rank or
the number of data workers.

Batch 2 per process, not 1: the toy row's heads use per-rank BN, and UPerHead's 1x1 pooling branch
cannot normalise one image in training (torch raises). SyncBN (the paper rows) needs GPUs.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from transfer.seg.checkpoint_loader import load_from_local_weights_only
from transfer.seg.distributed import configure
from transfer.seg.train import build_config, config_for_backbone
from transfer.toy_datasets import write_ade_toy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "train_seg.py")
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
SIZE = 64  # toy images and crops shrunk from 128 for CPU time
SMALL = [  # --cfg-options: 64x64 crops; a constant learning rate (see test_two_processes_...); drop path on
    f"model.data_preprocessor.size=({SIZE},{SIZE})", f"model.backbone.img_size={SIZE}",
    f"model.backbone.pretrain_img_size={SIZE}", f"train_dataloader.dataset.pipeline.2.scale=({SIZE},{SIZE})",
    f"train_dataloader.dataset.pipeline.3.crop_size=({SIZE},{SIZE})",
    f"val_dataloader.dataset.pipeline.1.scale=({SIZE},{SIZE})", "param_scheduler.0.start_factor=1.0",
    "model.backbone.drop_path_rate=0.1", "train_dataloader.batch_size=2", "train_cfg.val_interval=1000",
]


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> str:
    return str(write_ade_toy(tmp_path_factory.mktemp("toy_ade"), num_train=8, num_val=2, size=SIZE, seed=0))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(toy_root: str, work_dir: str, processes: int, *options: str) -> str:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                 "--master_port", str(free_port())] if processes > 1 else [sys.executable])
    args = [TOOL, "--backbone", "mae_vit_tiny", "--dataset", toy_root, "--work-dir", work_dir,
            "--launcher", "pytorch" if processes > 1 else "none", "--cfg-options", *SMALL, *options]
    res = subprocess.run(launcher + args, env=ENV, capture_output=True, text=True, timeout=300, cwd=ROOT)
    if res.returncode != 0:
        pytest.fail(f"train_seg.py with {processes} process(es) failed ({res.returncode}):\n"
                    f"{res.stdout[-3000:]}\n{res.stderr[-6000:]}", pytrace=False)
    return res.stdout + res.stderr


@pytest.mark.slow
def test_two_processes_equal_one_process_with_accumulation(tmp_path, toy_root):
    """2 optimizer steps: 2 x (2 processes x batch 2) vs 4 x (1 process x batch 2), accumulating 2.

    The learning rate is constant here: mmengine counts every micro-batch as an iteration, so with
    accumulation a per-iteration schedule (the toy row's warmup) moves between the micro-batches of a
    step and reaches a step at another value than in the 2-process run."""
    two = str(tmp_path / "two")
    log = train(toy_root, two, 2, "train_cfg.max_iters=2", "default_hooks.checkpoint.interval=2")
    one = str(tmp_path / "one")
    train(toy_root, one, 1, "optim_wrapper.accumulative_counts=2", "train_cfg.max_iters=4",
          "default_hooks.checkpoint.interval=4")
    assert "parameters after training: identical on all 2 processes" in log

    a = load_from_local_weights_only(os.path.join(two, "iter_2.pth"))
    b = load_from_local_weights_only(os.path.join(one, "iter_4.pth"))
    params = [k for k in a["state_dict"] if not k.rsplit(".", 1)[-1].startswith(("running_", "num_batches"))]
    assert len(params) > 100 and set(a["state_dict"]) == set(b["state_dict"])
    diff = max((a["state_dict"][k] - b["state_dict"][k]).abs().max().item() for k in params)
    print(f"2 processes x batch 2 vs 1 process x batch 2 x accumulation 2, 2 steps: max |parameter difference| "
          f"= {diff:.3e}")
    assert diff <= 1e-6

    # the parameters moved: 2 AdamW steps in both runs; layer scale starts at 1.0
    for ckpt in (a, b):
        assert {float(s["step"]) for s in ckpt["optimizer"]["state"].values()} == {2.0}
    gamma = a["state_dict"]["backbone.net.blocks.0.gamma_1"]
    assert (gamma - 1.0).abs().min() > 0
    # BN statistics are per rank: rank 0's (in the checkpoint) saw its 2 micro-batches, accumulation all 4
    bn = "decode_head.fpn_bottleneck.bn.num_batches_tracked"
    assert (int(a["state_dict"][bn]), int(b["state_dict"][bn])) == (2, 4)


def batches(toy_root: str, monkeypatch, rank: int, world_size: int, workers: int, seeded: bool, count: int):
    """The first ``count`` training batches (batch 1) of ``rank`` of ``world_size``, built as the Runner
    builds them (worker seeds included); ``seeded=False``: mmengine's InfiniteSampler and the bare set."""
    monkeypatch.setattr("mmengine.dataset.sampler.get_dist_info", lambda: (rank, world_size))
    monkeypatch.setattr("mmengine.runner.runner.get_rank", lambda: rank)  # worker seeds
    cfg = build_config(config_for_backbone("mae_vit_tiny"), dataset=toy_root, work_dir=os.devnull)
    loader = cfg.train_dataloader
    loader.update(batch_size=1, num_workers=workers, persistent_workers=False)
    if not seeded:
        loader.sampler = dict(type="InfiniteSampler", shuffle=True)
        loader.dataset = loader.dataset.dataset
    else:
        loader.sampler.batch_size = 1
    with DefaultScope.overwrite_default_scope("mmseg"):  # what the Runner sets
        it = iter(Runner.build_dataloader(loader, seed=0))
    return [next(it) for _ in range(count)]


def pixels(batch) -> tuple[torch.Tensor, torch.Tensor]:
    return batch["inputs"][0], batch["data_samples"][0].gt_sem_seg.data


def test_a_samples_augmentation_is_the_same_whatever_the_rank_world_size_and_workers(toy_root, monkeypatch):
    """Global draw 2k + r of one process reaches rank r of two at its k-th batch, with the same crop, flip
    and colour jitter, with 0 or 2 workers; mmengine's own sampler and worker seeds give other crops."""
    single = batches(toy_root, monkeypatch, 0, 1, 0, True, 6)
    for rank, workers in ((0, 2), (1, 0)):
        for k, batch in enumerate(batches(toy_root, monkeypatch, rank, 2, workers, True, 3)):
            want = single[2 * k + rank]
            assert batch["data_samples"][0].img_path == want["data_samples"][0].img_path
            for got, expected in zip(pixels(batch), pixels(want)):
                assert torch.equal(got, expected), (rank, workers, k)

    plain_single = batches(toy_root, monkeypatch, 0, 1, 0, False, 6)
    plain_rank1 = batches(toy_root, monkeypatch, 1, 2, 2, False, 3)
    assert [b["data_samples"][0].img_path for b in plain_rank1] == \
        [b["data_samples"][0].img_path for b in plain_single[1::2]]  # the same images ...
    assert any(not torch.equal(pixels(a)[0], pixels(b)[0])
               for a, b in zip(plain_rank1, plain_single[1::2]))  # ... augmented differently


def test_cpu_runs_build_ddp_without_device_ids(monkeypatch):
    cfg = Config(dict(launcher="pytorch", train_dataloader=None))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    configure(cfg)
    assert cfg.model_wrapper_cfg.device_ids is None and cfg.model_wrapper_cfg.broadcast_buffers is False
    assert [h["type"] for h in cfg.custom_hooks] == ["MicroBatchSeedHook"]


def test_cpu_runs_refuse_sync_bn_naming_the_layers(tmp_path, monkeypatch):
    os.makedirs(tmp_path / "images" / "training")
    for split in ("annotations/training", "images/validation", "annotations/validation"):
        os.makedirs(tmp_path / split)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"model\.decode_head\.norm_cfg"):
        build_config(config_for_backbone("mae_vit_base"), dataset=str(tmp_path), launcher="pytorch",
                     from_scratch=True, work_dir=str(tmp_path / "w"))
