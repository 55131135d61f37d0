"""transfer.rank_agreement: the after-training check that every process holds the same parameters."""
from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from transfer.rank_agreement import check_ranks_agree, parameters_digest


def test_digest_sees_one_changed_value_in_any_dtype_and_looks_through_wrappers():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2)).to(torch.bfloat16)
    before = parameters_digest(model)
    wrapper = torch.nn.Module()
    wrapper.module = model
    assert parameters_digest(wrapper) == before
    with torch.no_grad():
        model[1].bias[0] += 1
    assert parameters_digest(model) != before


def _worker(rank: int, port: int, differ: bool, results) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    if differ and rank == 1:
        with torch.no_grad():
            model.weight[0, 0] += 1e-7
    lines = []
    try:
        check_ranks_agree(model, lines.append)
        results[rank] = ("ok", lines)
    except RuntimeError as exc:
        results[rank] = ("error", str(exc))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("differ", [False, True])
def test_two_processes_agree_or_the_check_raises(differ):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(_free_port(), differ, results), nprocs=2)
        results = dict(results)
    if differ:
        assert all(kind == "error" and "differ after training" in text for kind, text in results.values())
    else:
        assert all(kind == "ok" and "identical on all 2 processes" in lines[0] for kind, lines in results.values())
    assert len(results) == 2
    check_ranks_agree(torch.nn.Linear(2, 2), pytest.fail)  # one process, no group: nothing to compare, no line
