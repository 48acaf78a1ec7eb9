"""Distributed training with torch.distributed (DDP): one process per device or core share.

A training process is part of a distributed run when its environment says so (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``: what ``torchrun`` and
torch's elastic launcher set). :func:`launch` starts such a run from one process with
torch's own launcher (``torch.distributed.launcher``, the machinery behind ``torchrun``), so
``rail-deepdisc train --nproc N`` and the ``nproc`` option need no separate command. The
process group uses NCCL on CUDA and gloo on CPU. Rank 0 writes checkpoints and the model.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in its run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        """Wait for every process (nothing when not distributed)."""
        if self.active:
            dist.barrier()

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Sums of per-process numbers over all processes (same keys everywhere)."""
        if not self.active or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
        dist.all_reduce(t)
        return dict(zip(keys, t.tolist(), strict=True))

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def environment_world() -> int:
    """The number of processes the environment says this run has (1: not distributed)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def setup(device_kind: str) -> DistContext:
    """Join the process group the environment describes (NCCL on CUDA, gloo on CPU)."""
    world = environment_world()
    if world == 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world)
    return DistContext(rank=rank, world=world, local_rank=local_rank)


def teardown(ctx: DistContext) -> None:
    """Leave the process group."""
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def _run_logged(function: Callable[..., Any], level: int, *args: Any) -> Any:
    """``function(*args)`` with the launching process's logging level (spawned processes
    start bare)."""
    import logging

    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return function(*args)


def launch(function: Callable[..., Any], nproc: int, *args: Any) -> Any:
    """Run ``function(*args)`` in ``nproc`` local processes of one distributed run, with
    torch's elastic launcher (as ``torchrun --standalone --nproc_per_node=nproc``); returns
    rank 0's result."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=int(nproc),
                          run_id=f"deepdisc-{uuid.uuid4().hex[:8]}", rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.5,
                          start_method="spawn")
    import logging

    level = logging.getLogger().level
    results = elastic_launch(config, _run_logged)(function, level, *args)
    return results[0]
