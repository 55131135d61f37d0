"""Issue 11, detection: N processes (gloo on CPU) == one process accumulating N micro-batches.

- the real CLI, tools/train_det.py on the toy row: 2 processes x 1 image per step equal 1 process x 1
  image x train.grad_accum_steps=2 (same seed, same initial weights), and both ranks end bit-identical;
- the data: a draw is augmented the same way whatever the number of processes, the rank and the
  DataLoader workers, and every layout trains an iteration on the same draws;
- the option: train.grad_accum_steps is a known key, refused unless >= 1, and a batch that does not
  split over processes x accumulation steps is refused before anything starts.
"""
from __future__ import annotations

import itertools
import operator
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog
from detectron2.data.common import ToIterableDataset
from torch.utils.data import DataLoader

from transfer.det import train as det_train
from transfer.det.configs import config_for_backbone
from transfer.det.data import num_classes, resolve_dataset
from transfer.det.distributed import (
    DrawPositionSampler, LayoutError, PositionSeededDataset, micro_batch_index, micro_batch_size,
)
from shaped_datasets import COCO_SHAPES, write_coco_shaped
from transfer.toy_datasets import coco_toy_dataset_spec, write_coco_toy
from tool_module import load_tool

ROOT = Path(__file__).resolve().parents[1]
TOY = ("--backbone", "mae_vit_tiny")  # the CPU toy row


@pytest.fixture(scope="module")
def toy_set(tmp_path_factory) -> str:
    """8 training and 2 test images of the toy shapes, as ``--dataset TRAIN_JSON:IMAGES,TEST_JSON:IMAGES``."""
    return coco_toy_dataset_spec(write_coco_toy(tmp_path_factory.mktemp("det_distributed"), num_train=8, num_val=2))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_cli(cwd: Path, output: str, *args: str, backbone: str = "mae_vit_tiny") -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tool = [sys.executable, str(ROOT / "tools" / "train_det.py"), "--backbone", backbone, "--output", output]
    return subprocess.run([*tool, "--dist-url", f"tcp://127.0.0.1:{_free_port()}", *args],  # options, then overrides
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _train(cwd: Path, output: str, *args: str, backbone: str = "mae_vit_tiny") -> None:
    proc = _run_cli(cwd, output, *args, backbone=backbone)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def _toy_model_checkpoint(path: Path, dataset: str) -> dict:
    """A detector checkpoint of the toy row at a fixed random init: both layouts start from it."""
    cfg = LazyConfig.load(config_for_backbone("mae_vit_tiny"))
    cfg.model.roi_heads.num_classes = num_classes(resolve_dataset(dataset, toy_root=path.parent).train)
    torch.manual_seed(0)
    state = {k: v.detach().clone() for k, v in instantiate(cfg.model).state_dict().items()}
    torch.save({"model": state}, path)
    return state


def _final(run: Path) -> dict:
    return torch.load(run / "model_final.pth", map_location="cpu", weights_only=False)["model"]


def _max_relative_difference(a: dict, b: dict) -> float:
    """max over tensors of max|a - b| / max|a| (float tensors)."""
    return max(((a[k] - b[k]).abs().max() / a[k].abs().max().clamp_min(1e-12)).item()
               for k in a if a[k].is_floating_point())


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_accumulating_two_micro_batches(toy_set, tmp_path):
    init = _toy_model_checkpoint(tmp_path / "init.pth", toy_set)
    common = ("--dataset", toy_set, "--weights", "init.pth", "train.max_iter=3", "train.seed=7",
              "dataloader.train.total_batch_size=2", "optimizer.lr=0.01", "model.backbone.net.drop_path_rate=0.1",
              "train.ddp.fp16_compression=False")  # the ViTDet recipe all-reduces fp16 gradients: rounding
    _train(tmp_path, "ddp", "--num-gpus", "2", *common)  # 2 gloo processes x 1 image, one worker each
    _train(tmp_path, "accum", "--num-gpus", "0", *common, "train.grad_accum_steps=2",
           "dataloader.train.num_workers=0")  # 1 process x 1 image x 2 micro-batches, loading in-process
    ddp, accum = _final(tmp_path / "ddp"), _final(tmp_path / "accum")
    assert ddp.keys() == accum.keys() == init.keys()
    difference = _max_relative_difference(accum, ddp)
    print(f"2 processes vs 1 process x accumulation 2, 3 iterations: max relative difference {difference:.3e}")
    assert difference <= 1e-6
    assert _max_relative_difference(init, ddp) > 1e-3  # it trained
    log = (tmp_path / "ddp" / "log.txt").read_text()
    assert "2 processes on the CPU (gloo)" in log
    assert "parameters after training: identical on all 2 processes" in log  # sha256 of each rank's parameters
    assert "1 process(es) x 1 image(s) x 2 accumulation step(s)" in (tmp_path / "accum" / "log.txt").read_text()


@pytest.mark.slow
def test_a_paper_row_on_two_gloo_processes_equals_one_process_accumulating(coco_shaped, tmp_path):
    """The ViTDet MAE ViT-B row as written (LSJ at 1024, polygon and RLE masks, paper head widths),
    only its trunk shrunk as in tests/test_det_paper_rows.py: one iteration of 2 images (~85 s)."""
    common = ("--dataset", coco_shaped, "--from-scratch", "model.backbone.net.name=mae_vit_tiny",
              "model.backbone.net.global_blocks=[1]", "model.backbone.net.drop_path_rate=0.1", "train.seed=5",
              "train.max_iter=1", "dataloader.train.total_batch_size=2", "dataloader.test.num_workers=0",
              "train.ddp.fp16_compression=False")
    _train(tmp_path, "ddp", "--num-gpus", "2", *common, backbone="mae_vit_base")
    _train(tmp_path, "accum", "--num-gpus", "0", *common, "train.grad_accum_steps=2",
           "dataloader.train.num_workers=0", backbone="mae_vit_base")
    difference = _max_relative_difference(_final(tmp_path / "accum"), _final(tmp_path / "ddp"))
    print(f"paper row, 2 processes vs 1 process x accumulation 2: max relative difference {difference:.3e}")
    assert difference <= 1e-6
    assert "parameters after training: identical on all 2 processes" in (tmp_path / "ddp" / "log.txt").read_text()


@pytest.mark.slow
def test_a_resumed_run_equals_an_uninterrupted_one(toy_set, tmp_path):
    """--resume goes on with the draws the run had not trained on (detectron2's TrainingSampler starts
    its stream again): 2 + 2 iterations == 4 iterations (one process, accumulation 2, drop path)."""
    common = ("--dataset", toy_set, "train.seed=7", "dataloader.train.total_batch_size=2", "optimizer.lr=0.01",
              "model.backbone.net.drop_path_rate=0.1", "train.grad_accum_steps=2")
    _train(tmp_path, "straight", *common, "train.max_iter=4")
    _train(tmp_path, "resumed", *common, "train.max_iter=2")
    _train(tmp_path, "resumed", "--resume", *common, "train.max_iter=4")
    difference = _max_relative_difference(_final(tmp_path / "straight"), _final(tmp_path / "resumed"))
    print(f"2 + 2 resumed iterations vs 4: max relative difference {difference:.3e}")
    assert difference <= 1e-6


# ---- the data --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def coco_shaped(tmp_path_factory) -> str:
    """COCO's image shapes with polygon and RLE masks (the paper rows' inputs), as --dataset; the test
    split is one landscape image (evaluation at paper head widths costs seconds per image on CPU)."""
    specs = []
    for name, seed, shapes in (("distributed_coco", 0, COCO_SHAPES), ("distributed_coco_eval", 1, COCO_SHAPES[:1])):
        root = write_coco_shaped(tmp_path_factory.mktemp(name), seed=seed, shapes=shapes)
        (root / "instances.json").rename(root / f"{name}.json")  # a name of its own to register
        specs.append(f"{root / f'{name}.json'}:{root / 'images'}")
    return ",".join(specs)


def _stream(dataset, rank: int, world: int, batch: int, workers: int, count: int) -> list[tuple[int, dict]]:
    """The first ``count`` (position, mapped draw) of one process, through a DataLoader as detectron2's
    build_batch_data_loader feeds it (ToIterableDataset shards the sampler over the workers)."""
    sampler = DrawPositionSampler(len(dataset), batch, seed=3, rank=rank, world=world)
    loader = DataLoader(ToIterableDataset(_Keyed(dataset), sampler, shard_chunk_size=batch),
                        num_workers=workers, collate_fn=operator.itemgetter(0))
    return list(itertools.islice(loader, count))


class _Keyed(torch.utils.data.Dataset):
    """PositionSeededDataset that also returns the draw position it mapped."""

    def __init__(self, dataset: PositionSeededDataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        return key[0], self.dataset[key]


def _same_draw(a: dict, b: dict) -> bool:
    return torch.equal(a["image"], b["image"]) and torch.equal(a["instances"].gt_boxes.tensor,
                                                              b["instances"].gt_boxes.tensor)


@pytest.mark.parametrize("row, data", [("mae_vit_tiny", "toy_set"), ("mae_vit_base", "coco_shaped")])
def test_a_draw_is_augmented_the_same_in_every_layout(row, data, request):
    """The toy row's and a paper row's training mapper (LSJ, polygon and RLE masks): position p maps
    to the same tensors whatever the processes, the rank and the DataLoader workers."""
    records = DatasetCatalog.get(resolve_dataset(request.getfixturevalue(data), toy_root="unused").train)
    mapper = instantiate(LazyConfig.load(config_for_backbone(row)).dataloader.train.mapper)
    dataset = PositionSeededDataset(records, mapper, seed=3)
    single = dict(_stream(dataset, rank=0, world=1, batch=1, workers=0, count=12))
    assert sorted(single) == list(range(12))
    for world, batch, workers in ((2, 1, 0), (2, 1, 2), (3, 2, 1), (1, 2, 2)):
        for rank in range(world):
            for position, mapped in _stream(dataset, rank, world, batch, workers, count=4):
                assert (position // batch) % world == rank
                assert _same_draw(mapped, single[position]), (world, rank, workers, position)
    drawn = dict(itertools.islice(DrawPositionSampler(len(records), 1, seed=3, rank=0, world=1), 12))
    np.random.seed(123)  # the caller's RNG state neither changes a draw nor is changed by one
    state = np.random.get_state()[1].copy()
    assert _same_draw(dataset[(5, drawn[5])], single[5])
    assert (np.random.get_state()[1] == state).all()
    draws = [dataset[(p, 0)] for p in range(6)]  # one image drawn six times: augmented differently
    assert any(not _same_draw(draws[0], d) for d in draws[1:])


@pytest.mark.parametrize("world, accum", [(1, 4), (2, 2), (4, 1)])
def test_every_layout_trains_an_iteration_on_the_same_draws(world, accum):
    """Iteration k covers micro-batches k*world*accum ... : the micro-batch index the trainer seeds the
    model with is the chunk of draws the sampler gives that process at that step."""
    batch, size = 2, 5
    samplers = [iter(DrawPositionSampler(size, batch, seed=1, rank=r, world=world)) for r in range(world)]
    reference = iter(DrawPositionSampler(size, batch, seed=1, rank=0, world=1))
    for iteration in range(3):
        drawn = {}
        for step in range(accum):
            for rank in range(world):
                g = micro_batch_index(iteration, step, accum, rank=rank, world=world)
                drawn[g] = [next(samplers[rank]) for _ in range(batch)]
        expected = {g: [next(reference) for _ in range(batch)] for g in sorted(drawn)}
        assert drawn == expected
        assert sorted(drawn) == list(range(iteration * 4, iteration * 4 + 4))


def test_a_resumed_sampler_goes_on_with_the_draws_it_had_not_trained_on():
    full = iter(DrawPositionSampler(7, 2, seed=5, rank=1, world=2))
    resumed = DrawPositionSampler(7, 2, seed=5, rank=1, world=2)
    resumed.first_chunk = 6
    skipped = [next(full) for _ in range(6 * 2)]
    assert [next(full) for _ in range(10)] == [x for _, x in zip(range(10), resumed)]
    assert all(p < 6 * 2 * 2 for p, _ in skipped)


# ---- the option -------------------------------------------------------------------------------------
def test_grad_accum_steps_is_a_known_key_and_must_be_positive(toy_set, tmp_path):
    train_det = load_tool("train_det")
    args = train_det.parse_args([*TOY, "--dataset", toy_set, "--output", str(tmp_path / "a"),
                                 "train.grad_accum_steps=4"])
    assert det_train.setup(args).train.grad_accum_steps == 4
    args = train_det.parse_args([*TOY, "--dataset", toy_set, "--output", str(tmp_path / "b"),
                                 "train.grad_accum_steps=0"])
    with pytest.raises(ValueError, match="train.grad_accum_steps"):
        det_train.setup(args)


def test_a_batch_that_does_not_split_is_refused_before_any_process_starts(toy_set, tmp_path):
    assert micro_batch_size(64, 2, 4) == 8
    with pytest.raises(LayoutError, match="total_batch_size"):
        micro_batch_size(4, 3, 1)
    train_det = load_tool("train_det")
    with pytest.raises(SystemExit, match="total_batch_size"):
        train_det.cli([*TOY, "--dataset", toy_set, "--output", str(tmp_path / "c"), "--num-gpus", "2",
                       "dataloader.train.total_batch_size=2", "train.grad_accum_steps=2"])


# ---- the trainer ------------------------------------------------------------------------------------
class _Regression(torch.nn.Module):
    """A loss dict from a list of (x, y) pairs, as detectron2 models take a list of inputs."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)

    def forward(self, batch):
        x = torch.stack([x for x, _ in batch])
        y = torch.stack([y for _, y in batch])
        noise = torch.rand(1)  # a draw from torch's global RNG, as RPN/RoI sampling and drop path make
        return {"loss_a": ((self.linear(x) - y) ** 2).mean() * (1 + noise[0]), "loss_b": self.linear.bias.abs().sum()}


def _steps(trainer_class, batches: list, accum: int, run_step=None) -> torch.Tensor:
    from detectron2.utils.events import EventStorage

    torch.manual_seed(0)
    model = _Regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = trainer_class(model, iter(batches), optimizer, grad_accum_steps=accum, seed=11)
    with EventStorage(0) as storage:
        for trainer.iter in range(len(batches) // accum):
            storage.iter = trainer.iter
            (run_step or trainer_class.run_step)(trainer)
    assert storage.history("total_loss").values()  # the mean over micro-batches is logged
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_accumulating_two_micro_batches_equals_averaging_their_losses():
    """One process, no DDP: accumulation 2 over micro-batches of one sample == the mean of the two
    samples' losses, each with the RNG draw of its micro-batch index; the AMP variant (here with its
    scaler and autocast disabled: no CUDA) runs the same accumulation."""
    from transfer.det.distributed import MODEL_STREAM, AccumulatingAMPTrainer, AccumulatingTrainer
    from pretrain.data import sample_seed

    torch.manual_seed(1)
    samples = [[(torch.randn(3), torch.randn(1))] for _ in range(4)]
    accumulated = _steps(AccumulatingTrainer, samples, accum=2)
    torch.manual_seed(0)
    model = _Regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for iteration in range(2):
        optimizer.zero_grad()
        for step in range(2):
            torch.manual_seed(sample_seed(11, MODEL_STREAM, micro_batch_index(iteration, step, 2, rank=0, world=1)))
            sum(model(samples[2 * iteration + step]).values()).div(2).backward()
        optimizer.step()
    by_hand = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.allclose(accumulated, by_hand, rtol=0, atol=1e-7)
    with pytest.warns(UserWarning):  # GradScaler / autocast on a machine without CUDA: disabled
        amp = _steps(AccumulatingAMPTrainer, samples, accum=2, run_step=AccumulatingTrainer.run_step)
    assert torch.equal(amp, accumulated)


@pytest.mark.slow
def test_input_errors_of_a_multi_process_run_are_one_line_not_a_traceback(toy_set, tmp_path):
    """--num-gpus 2 on CPU: a used --output is refused by the launching process before any worker
    starts; an empty --weights file, met by the workers, is printed by them and the run exits with 2.
    Neither shows the launcher's traceback (both did before)."""
    used = tmp_path / "used"
    used.mkdir()
    (used / "metrics.json").write_text("{}")
    proc = _run_cli(tmp_path, str(used), "--num-gpus", "2", "--dataset", toy_set, "train.max_iter=1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "--output" in proc.stderr
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    proc = _run_cli(tmp_path, str(tmp_path / "fresh"), "--num-gpus", "2", "--dataset", toy_set,
                    "--weights", str(empty), "train.max_iter=1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "empty.pth" in proc.stderr
