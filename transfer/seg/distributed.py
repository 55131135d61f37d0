"""Distributed segmentation runs that equal one process with gradient accumulation, also on CPU.

N processes x batch B give the parameters of 1 process x batch B x ``optim_wrapper.accumulative_counts``
N (same seed), up to float summation order, because
- the same images reach the same micro-batches: ``SeededInfiniteSampler`` deals mmengine's
  ``InfiniteSampler`` stream (the same seeded permutations, one per pass over the set) to the ranks in
  contiguous chunks of B, so rank r at iteration k gets global micro-batch k * N + r: micro-batch r of
  step k with accumulation. With one process it yields exactly ``InfiniteSampler``'s order;
- a sample's augmentation depends only on (seed, pass, index): the sampler hands each index its seed
  (``pretrain.data.sample_seed``) and ``SeededSamples`` runs the dataset's pipeline under it with
  Python's, torch's and numpy's global RNGs seeded (mmcv / mmseg transforms draw from numpy and
  ``random``), whatever the rank, the worker or the number of workers;
- ``MicroBatchSeedHook`` seeds torch (dropout in the heads, drop path in the backbone) before every
  micro-batch from (seed, global micro-batch number = iteration x world size + rank);
- BatchNorm normalises each micro-batch alone in both layouts. Running statistics are not
  synchronised (mmengine's DDP has ``broadcast_buffers=False``): each rank keeps its own, and rank 0's
  go into the checkpoint. SyncBN (the paper rows' heads) needs GPUs (torch refuses CPU tensors); there
  a step normalises over all ranks' images, as one process with batch N x B would, not as accumulation.

Not equal: a learning rate that changes per iteration. mmengine counts every micro-batch as an
iteration (max_iters, scheduler begin/end, intervals), so with accumulation the schedule advances N
times per optimizer step; the two layouts agree where the rate is constant over N iterations.

CPU (gloo): mmengine's pytorch launcher calls ``torch.cuda.set_device`` unconditionally and wraps the
model with ``device_ids=[LOCAL_RANK]``; ``init_cpu_process_group`` starts the gloo group before the
Runner (which then skips its own initialisation) and ``configure`` builds DDP with ``device_ids=None``.
"""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Iterator

import torch
import torch.distributed as dist
from mmengine.config import Config, ConfigDict
from mmengine.dataset import InfiniteSampler
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import DATA_SAMPLERS, DATASETS, HOOKS

from pretrain.data import sample_seed, seeded_rngs

MICRO_BATCH_KEY = 2**32 - 1  # sample_seed's index for micro-batch seeds: no dataset index reaches it


@DATA_SAMPLERS.register_module()
class SeededInfiniteSampler(InfiniteSampler):
    """``InfiniteSampler``'s stream, in contiguous chunks of ``batch_size`` per rank, as ``(index, seed)``
    pairs for ``SeededSamples`` (the seed: ``sample_seed(seed, pass over the set, index)``)."""

    def __init__(self, dataset, shuffle: bool = True, seed: int | None = None, batch_size: int = 1) -> None:
        self.batch_size = int(batch_size)
        super().__init__(dataset, shuffle=shuffle, seed=seed)

    def _indices_of_rank(self) -> Iterator[tuple[int, int]]:
        for position, index in enumerate(self._infinite_indices()):
            if (position // self.batch_size) % self.world_size == self.rank:
                yield index, sample_seed(self.seed, position // self.size, index)


@DATASETS.register_module()
class SeededSamples:
    """A dataset whose items, asked for as ``(index, seed)``, run the pipeline under ``seeded_rngs(seed)``
    (a plain index is passed through unseeded)."""

    def __init__(self, dataset: dict | Any) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def full_init(self) -> None:
        if hasattr(self.dataset, "full_init"):
            self.dataset.full_init()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        if isinstance(item, (tuple, list)):
            index, seed = item
            with seeded_rngs(int(seed)):
                return self.dataset[int(index)]
        return self.dataset[item]


@HOOKS.register_module()
class MicroBatchSeedHook(Hook):
    """Seeds torch's generators before each micro-batch from (run seed, iteration x world size + rank):
    rank r at iteration k draws the dropout / drop-path masks of micro-batch r of step k with
    accumulation (mmengine counts every micro-batch as an iteration)."""

    priority = "VERY_HIGH"

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        rank, world_size = get_dist_info()
        torch.manual_seed(sample_seed(runner.seed, runner.iter * world_size + rank, MICRO_BATCH_KEY))


def _seed_samples(cfg: Config) -> None:
    loader = cfg.get("train_dataloader")
    if not loader or loader.get("sampler", {}).get("type") not in ("InfiniteSampler", "SeededInfiniteSampler"):
        return  # epoch-based samplers keep mmengine's behaviour
    loader.sampler = ConfigDict(loader.sampler, type="SeededInfiniteSampler", batch_size=loader.batch_size)
    if loader.dataset.get("type") != "SeededSamples":
        loader.dataset = ConfigDict(type="SeededSamples", dataset=loader.dataset)


def _sync_bn_layers(node: Any, path: str = "model") -> list[str]:
    if isinstance(node, dict):
        found = [path] if node.get("type") == "SyncBN" else []
        return found + [p for k, v in node.items() for p in _sync_bn_layers(v, f"{path}.{k}")]
    if isinstance(node, (list, tuple)):
        return [p for i, v in enumerate(node) for p in _sync_bn_layers(v, f"{path}.{i}")]
    return []


def configure(cfg: Config) -> None:
    """Per-sample seeded augmentation, per-micro-batch seeded torch RNG, and DDP on CPU (gloo).
    A distributed CPU run of a config with SyncBN is refused (torch runs SyncBN on GPUs only)."""
    _seed_samples(cfg)
    hooks = list(cfg.get("custom_hooks") or [])
    if not any(h.get("type") == "MicroBatchSeedHook" for h in hooks):
        cfg.custom_hooks = hooks + [dict(type="MicroBatchSeedHook")]
    if cfg.get("launcher", "none") != "none" and not torch.cuda.is_available():
        sync_bn = _sync_bn_layers(cfg.get("model"))
        if sync_bn:
            raise ValueError(f"SyncBN needs CUDA devices (torch refuses CPU tensors), and {', '.join(sync_bn)} "
                             "use it: on CPU set their type to BN (per-process statistics), e.g. --cfg-options "
                             f"{sync_bn[0]}.type=BN, or run with --launcher none (mmengine then reverts SyncBN)")
        wrapper = ConfigDict(cfg.get("model_wrapper_cfg") or dict(
            type="MMDistributedDataParallel", broadcast_buffers=False,
            find_unused_parameters=cfg.get("find_unused_parameters", False)))
        wrapper.device_ids = None  # a CPU module: DDP refuses device ids
        cfg.model_wrapper_cfg = wrapper


def init_cpu_process_group(cfg: Config) -> None:
    """Start the gloo process group for ``--launcher pytorch`` without CUDA (mmengine's launcher would
    call ``torch.cuda.set_device``); the Runner then uses it as it finds it."""
    if cfg.get("launcher") != "pytorch" or torch.cuda.is_available() or dist.is_initialized():
        return
    timeout = (cfg.get("env_cfg") or {}).get("dist_cfg", {}).get("timeout")
    kwargs = {"timeout": timedelta(seconds=timeout)} if timeout else {}
    dist.init_process_group("gloo", rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]),
                            **kwargs)
    print_log(f"no CUDA device: gloo process group, rank {dist.get_rank()} of {dist.get_world_size()}",
              logger="current")
