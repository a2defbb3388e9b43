"""torchrun / DistributedDataParallel set-up: gloo on CPU, nccl on CUDA.

Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) :func:`setup` joins the process
group; without them it is a single process and every helper is a no-op.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "setup", "teardown", "all_reduce_mean", "any_rank", "replicas_agree"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> DistInfo:
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def teardown(info: DistInfo, *, synchronize: bool) -> None:
    """Leave the process group. ``synchronize`` (after a normal end only: a rank that failed never
    gets here) waits for every rank first, so none closes its connections while another still
    talks; collecting garbage first frees wrappers (DDP) that hold the group, so no gloo thread
    outlives it into interpreter shutdown (an occasional "terminate called without an active
    exception" abort at exit)."""
    if info.enabled and dist.is_initialized():
        if synchronize:
            dist.barrier()
        gc.collect()
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= info.world_size
    return value


def any_rank(flags: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Element-wise "on any process" of a boolean vector (itself for one process). Every rank must
    call it at the same step: a stop or a non-finite loss seen by one rank is then acted on by
    all of them together, so none is left waiting in a collective the others have left."""
    if not info.enabled:
        return flags
    values = flags.to(torch.int32)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values.bool()


def replicas_agree(model: torch.nn.Module, info: DistInfo) -> bool:
    """True when every process holds bit-identical parameters (always True for one process)."""
    if not info.enabled:
        return True
    flat = torch.cat([p.detach().float().flatten() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(info.world_size)]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])
