"""What a training run reports: the screen (a tqdm bar on a terminal), ``log.jsonl`` (one JSON record per
line, like the official log.txt) and TensorBoard scalars, with speed and ETA. Only rank 0 writes.

    log = RunLog(out_dir, master=rank == 0, device=device, total_iters=1000, log_interval=10)
    log.add_loss(loss)                                  # every micro-batch
    log.tick()                                          # every optimizer step
    if log.due(it): log.interval(it, epoch, {"lr": lr}, {"skipped_images": 0})   # every rank (all-reduce)
    log.record(it, {"knn_top1": 41.2}, group="monitor") # any other measurement
    log.close()

Generic: it knows iterations, a loss, named scalars and counts, not what is being trained.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings

import torch
import torch.distributed as dist

SCALAR_FORMATS = {"lr": ".3e", "mm": ".5f", "grad_norm": ".3f"}  # screen formats; others ".4g"


def format_seconds(s: float) -> str:
    """Seconds -> 'H:MM:SS'."""
    s = int(max(s, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def tensorboard_writer(log_dir: str):
    """A SummaryWriter, or None with a warning when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard is not installed: no TensorBoard scalars (pip install tensorboard)")
        return None
    return SummaryWriter(log_dir)


def _progress_bar(total: int, initial: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, dynamic_ncols=True)


class RunLog:
    """The log of one run. ``stop_at``: the iteration the run stops at (ETA; default ``total_iters``);
    ``images_per_iter``: images per optimizer step, all ranks (img/s; 0: not shown). The loss is
    averaged over the micro-batches of each log interval and over ranks."""

    def __init__(self, output_dir: str, *, master: bool, device: torch.device, total_iters: int,
                 stop_at: int | None = None, start_iter: int = 0, log_interval: int = 10,
                 images_per_iter: int = 0, progress_bar: bool = True, tensorboard: bool = True):
        self.output_dir, self.master, self.device = output_dir, master, device
        self.total_iters, self.stop_at = total_iters, stop_at or total_iters
        self.log_interval, self.images_per_iter = log_interval, images_per_iter
        show_bar = master and progress_bar and sys.stderr.isatty()
        self.bar = _progress_bar(total_iters, start_iter) if show_bar else None
        self.writer = tensorboard_writer(os.path.join(output_dir, "tb")) if master and tensorboard else None
        self.last_loss = float("nan")
        self.t_start = time.time()
        self._reset(start_iter)

    def _reset(self, iteration: int) -> None:
        self.loss_sum, self.loss_count = torch.zeros((), device=self.device), 0
        self.t0, self.iter_start = time.time(), iteration

    @property
    def elapsed(self) -> float:
        return time.time() - self.t_start

    def message(self, msg: str) -> None:
        """A line on the screen (rank 0), above the progress bar when there is one."""
        if not self.master:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def add_loss(self, loss: torch.Tensor) -> None:
        self.loss_sum += loss.detach().float()
        self.loss_count += 1

    def tick(self) -> None:
        """One optimizer step done (the progress bar)."""
        if self.bar is not None:
            self.bar.update(1)

    def due(self, iteration: int) -> bool:
        """Whether ``iteration`` ends a log interval (every ``log_interval`` and at ``stop_at``)."""
        return iteration % self.log_interval == 0 or iteration == self.stop_at

    def _mean_loss(self) -> float:
        stats = torch.stack([self.loss_sum, torch.tensor(float(self.loss_count), device=self.device)])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        return (stats[0] / stats[1]).item()

    def interval(self, iteration: int, epoch: float, scalars: dict[str, float | None],
                 counts: dict[str, int] | None = None) -> float:
        """Close a log interval (call it on every rank: the loss is all-reduced): one screen line with
        speed and ETA, one log.jsonl record, the TensorBoard scalars -> the interval's mean loss.
        ``scalars`` (e.g. lr; None values are left out) go to 'train/<name>', ``counts`` to 'data/<name>'."""
        loss, counts = self._mean_loss(), counts or {}
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss is {loss} at iteration {iteration}; stopping")
        self.last_loss, scalars = loss, {k: v for k, v in scalars.items() if v is not None}
        its = (iteration - self.iter_start) / max(time.time() - self.t0, 1e-9)
        eta = (self.stop_at - iteration) / max(its, 1e-9)
        values = "".join(f" | {k} {float(v):{SCALAR_FORMATS.get(k, '.4g')}}" for k, v in scalars.items())
        speed = f" | {its * self.images_per_iter:.1f} img/s" if self.images_per_iter else ""
        self.message(f"it {iteration}/{self.total_iters} | ep {epoch:.2f} | loss {loss:.4f}{values} | {its:.2f} it/s"
                     f"{speed} | elapsed {format_seconds(self.elapsed)} | eta {format_seconds(eta)}"
                     + "".join(f" | {k.replace('_', ' ')} {v}" for k, v in counts.items()))
        self._append({"iteration": iteration, "epoch": epoch, "loss": loss, **{k: float(v) for k, v in scalars.items()},
                      "it_per_s": its, "eta_s": round(eta, 1), **counts})
        self._scalars(iteration, {"train/loss": loss, **{f"train/{k}": v for k, v in scalars.items()},
                                  "perf/it_per_s": its, **{f"data/{k}": v for k, v in counts.items()}})
        self._reset(iteration)
        return loss

    def record(self, iteration: int, values: dict[str, float], epoch: float | None = None,
               group: str = "monitor") -> None:
        """A measurement outside the loss intervals (e.g. the kNN monitor): a screen line, a log.jsonl
        record with the iteration (and epoch), TensorBoard '<group>/<name>' scalars. Rank 0 only."""
        where = {"iteration": iteration, **({"epoch": epoch} if epoch is not None else {})}
        self.message(f"{group} at it {iteration}: " + " | ".join(f"{k} {v:.4g}" for k, v in values.items()))
        self._append({**where, **values})
        self._scalars(iteration, {f"{group}/{k}": v for k, v in values.items()})

    def _append(self, record: dict) -> None:
        if self.master:
            with open(os.path.join(self.output_dir, "log.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")

    def _scalars(self, iteration: int, scalars: dict[str, float]) -> None:
        if self.writer is not None:
            for tag, value in scalars.items():
                self.writer.add_scalar(tag, float(value), iteration)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
