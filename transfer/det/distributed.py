"""Detection training whose result does not depend on how the batch is laid out over processes.

N processes x batch B per process give the same model as one process x batch B x ``train.grad_accum_steps``
N (same seed): the same images, with the same augmentation, in the same micro-batches, with the same
random draws inside the model; only the order in which gradients are summed differs. Three pieces:

- data: ``DrawPositionSampler`` numbers every image the run draws with a global *draw position* (one
  shuffled stream per seed, as detectron2's TrainingSampler) and hands each process the micro-batches
  (chunks of B positions) it trains on; ``PositionSeededDataset`` maps an image with the RNGs (numpy's,
  Python's, torch's) seeded from ``pretrain.data.sample_seed(seed, 0, position)``, so its augmentation
  depends neither on the rank, nor on the number of processes or DataLoader workers.
- model: before each micro-batch, torch's global RNG (RPN anchor and RoI proposal sampling, drop path)
  is seeded from ``sample_seed(seed, 1, g)``, g the micro-batch's global index (``micro_batch_index``).
- optimizer: ``AccumulatingTrainer`` runs ``train.grad_accum_steps`` micro-batches per optimizer step.

Micro-batch g of iteration k is ``(k * accum + step) * world + rank``: the set an iteration trains on is
the same for every (world, accum) with the same product.
"""
from __future__ import annotations

import logging
import time
from contextlib import nullcontext

import torch
from detectron2.config import instantiate
from detectron2.data import DatasetFromList, build_detection_train_loader
from detectron2.engine import AMPTrainer, SimpleTrainer
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage
from detectron2.utils.registry import locate
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, Sampler

from pretrain.data import sample_seed, seeded_rngs
from transfer.det.configs import ConfigValueError

logger = logging.getLogger("detectron2")

DATA_STREAM, MODEL_STREAM = 0, 1  # the 'epoch' argument of sample_seed: keeps the two seed streams apart


class LayoutError(ConfigValueError):
    """A batch that cannot be split over the processes and accumulation steps asked for."""


def run_seed(cfg) -> int:
    """``train.seed``, or (when it is negative or absent) one random seed shared by all processes."""
    seed = cfg.train.get("seed", -1)
    return int(seed) if seed is not None and seed >= 0 else comm.shared_random_seed()


def micro_batch_index(iteration: int, step: int, accum: int, rank: int | None = None,
                      world: int | None = None) -> int:
    """Global index of the micro-batch that ``rank`` trains at accumulation ``step`` of ``iteration``."""
    rank = comm.get_rank() if rank is None else rank
    world = comm.get_world_size() if world is None else world
    return (iteration * accum + step) * world + rank


class DrawPositionSampler(Sampler):
    """Infinite ``(draw position, dataset index)`` pairs for this process. The stream of indices is a
    new shuffle of the dataset per epoch (a generator seeded once with ``seed``); position p is the p-th
    draw of it. Micro-batch g is positions ``g*batch ... g*batch+batch-1``; this process gets the
    micro-batches ``c * world + rank``, c = ``first_chunk``, ``first_chunk`` + 1, ... (set
    ``first_chunk`` to iterations done x accumulation steps to resume the stream where it stopped)."""

    def __init__(self, size: int, batch: int, seed: int, shuffle: bool = True, rank: int | None = None,
                 world: int | None = None):
        self.size, self.batch, self.seed, self.shuffle = size, batch, seed, shuffle
        self.rank = comm.get_rank() if rank is None else rank
        self.world = comm.get_world_size() if world is None else world
        self.first_chunk = 0

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        skip = self.first_chunk * self.world * self.batch
        epoch = 0
        while True:
            order = torch.randperm(self.size, generator=generator) if self.shuffle else torch.arange(self.size)
            base, epoch = epoch * self.size, epoch + 1
            if base + self.size <= skip:
                continue
            for offset, index in enumerate(order.tolist()):
                position = base + offset
                if position >= skip and (position // self.batch) % self.world == self.rank:
                    yield position, index


class PositionSeededDataset(Dataset):
    """``mapper(dataset[index])`` for a ``(draw position, index)`` key, with every global RNG seeded from
    ``sample_seed(seed, 0, position)`` around the call: the same draw is augmented the same way in any
    process, DataLoader worker or layout."""

    def __init__(self, dataset, mapper, seed: int):
        self.dataset = DatasetFromList(dataset, copy=False) if isinstance(dataset, list) else dataset
        self.mapper, self.seed = mapper, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        position, index = key
        record = self.dataset[index]
        with seeded_rngs(sample_seed(self.seed, DATA_STREAM, position)):
            mapped = self.mapper(record)
        if mapped is None:
            raise RuntimeError(f"the training mapper dropped {record.get('file_name', index)!r} (returned None)")
        return mapped


def micro_batch_size(total: int, world: int, accum: int) -> int:
    """Images per process per micro-batch; ``total`` (images per optimizer step) must split evenly."""
    if total % (world * accum):
        raise LayoutError(
            f"dataloader.train.total_batch_size={total} (images per optimizer step) does not split into "
            f"{world} process(es) x train.grad_accum_steps={accum} equal micro-batches")
    return total // (world * accum)


def build_train_loader(cfg, seed: int, accum: int):
    """The training loader of ``cfg.dataloader.train`` (detectron2's build_detection_train_loader) with
    draw positions and per-position seeding; each batch it yields is one micro-batch of this process.
    Returns ``(loader, sampler)``. Aspect-ratio grouping regroups images only when a micro-batch has
    more than one image per process: layouts then match only where every image has the same
    orientation."""
    spec = cfg.dataloader.train
    target = spec.get("_target_")
    if (locate(target) if isinstance(target, str) else target) is not build_detection_train_loader:
        raise LayoutError(f"dataloader.train must be detectron2's build_detection_train_loader, not {spec._target_}")
    if spec.get("sampler") is not None:
        raise LayoutError("dataloader.train.sampler is replaced by transfer.det.distributed.DrawPositionSampler "
                          "(per-draw seeding); a config of its own sampler is not supported")
    batch = micro_batch_size(spec.total_batch_size, comm.get_world_size(), accum)
    dataset = instantiate(spec.dataset)
    sampler = DrawPositionSampler(len(dataset), batch, seed)
    rest = {k: instantiate(v) for k, v in spec.items() if k not in ("_target_", "dataset", "mapper", "sampler",
                                                                      "total_batch_size")}
    loader = build_detection_train_loader(
        PositionSeededDataset(dataset, instantiate(spec.mapper), seed), mapper=None, sampler=sampler,
        total_batch_size=batch * comm.get_world_size(), **rest)
    logger.info("Training batch: %d images per step = %d process(es) x %d image(s) x %d accumulation step(s); "
                "augmentation and model randomness seeded per draw from seed %d",
                spec.total_batch_size, comm.get_world_size(), batch, accum, seed)
    return loader, sampler


class AccumulatingTrainer(SimpleTrainer):
    """detectron2's SimpleTrainer with ``grad_accum_steps`` micro-batches per optimizer step, each
    loss divided by ``grad_accum_steps`` (DDP averages over processes): N processes x 1 micro-batch ==
    1 process x N accumulated micro-batches. Gradients are synchronised over processes only at the last
    micro-batch. Logged losses are the mean over micro-batches (and processes).

    Detectron2's mask loss (a mean over one forward's foreground RoIs) and RoI-head losses (means over
    its sampled RoIs) are normalised per forward: an accumulated step averages per-micro-batch means,
    exactly what the paper's multi-GPU runs compute (a mean per GPU, averaged by DDP), whereas one
    forward of all the images normalises over all of their RoIs together, a slightly different loss. Before each micro-batch torch's RNGs are seeded
    from (seed, its global index), so RPN/RoI sampling and drop path match across layouts."""

    def __init__(self, model, data_loader, optimizer, *, grad_accum_steps: int = 1, seed: int = 0, **kwargs):
        super().__init__(model, data_loader, optimizer, **kwargs)
        self.grad_accum_steps, self.seed = grad_accum_steps, seed

    def run_step(self):
        assert self.model.training, "[AccumulatingTrainer] model was changed to eval mode!"
        self.optimizer.zero_grad()
        loss_dicts, data_time = [], 0.0
        for step in range(self.grad_accum_steps):
            start = time.perf_counter()
            data = next(self._data_loader_iter)
            data_time += time.perf_counter() - start
            loss_dicts.append(self._micro_batch(data, step))
        self.after_backward()
        mean = {k: sum(d[k] for d in loss_dicts) / len(loss_dicts) for k in loss_dicts[0]}
        self._write_metrics(mean, data_time)
        self._optimizer_step()

    def _micro_batch(self, data, step: int) -> dict:
        index = micro_batch_index(self.iter, step, self.grad_accum_steps)
        torch.manual_seed(sample_seed(self.seed, MODEL_STREAM, index))  # CPU and every GPU generator
        last = step == self.grad_accum_steps - 1
        no_sync = isinstance(self.model, DistributedDataParallel) and not last
        with self.model.no_sync() if no_sync else nullcontext():
            with self._autocast():
                loss_dict = self.model(data)
                if isinstance(loss_dict, torch.Tensor):
                    loss_dict = {"total_loss": loss_dict}
                losses = sum(loss_dict.values())
            self._backward(losses / self.grad_accum_steps)
        return {k: v.detach() for k, v in loss_dict.items()}

    def _autocast(self):
        return nullcontext()

    def _backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def _optimizer_step(self) -> None:
        self.optimizer.step()


class AccumulatingAMPTrainer(AccumulatingTrainer, AMPTrainer):
    """AccumulatingTrainer with detectron2's AMPTrainer's autocast, gradient scaler and its state."""

    def run_step(self):
        assert torch.cuda.is_available(), "[AMPTrainer] CUDA is required for AMP training!"
        super().run_step()

    def _autocast(self):
        return torch.autocast("cuda", dtype=self.precision)

    def _backward(self, loss: torch.Tensor) -> None:
        self.grad_scaler.scale(loss).backward()

    def _optimizer_step(self) -> None:
        if self.log_grad_scaler:
            get_event_storage().put_scalar("[metric]grad_scaler", self.grad_scaler.get_scale())
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
