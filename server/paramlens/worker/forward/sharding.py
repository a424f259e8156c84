"""Training spread over several GPUs, as one of them sees it: the step of rank 0 of a data-
parallel group, simulated by the training libraries' own code where torch has it.

- ``ddp``: ``DistributedDataParallel`` keeps every parameter, gradient and optimizer state,
  and its reducer allocates flat buckets as large as the gradients (``gradient_as_bucket_view``
  off, its default): one more copy of them, for the whole of training.
- ``zero1``: as DDP, with the optimizer state sharded as ``ZeroRedundancyOptimizer`` shards
  it: whole parameters, given to the ranks greedily by size; rank 0 steps its share.
- ``zero2`` / ``zero3`` (= ``fsdp``): torch's FSDP2 (``fully_shard``), really run, on fake
  tensors, over a fake process group of that many ranks (no communication): parameters,
  gradients and optimizer state sharded; each unit's parameters all-gathered for its forward
  and backward (and the next one prefetched); ``zero2`` keeps them gathered after forward
  (``reshard_after_forward=False``). The units are the repeated blocks unless named.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from . import repeats

FSDP = ("zero2", "zero3", "fsdp")


class ShardingError(Exception):
    """The strategy cannot be simulated with this torch or this model."""


@contextlib.contextmanager
def fake_group(world: int) -> Iterator[Any]:
    """A process group of ``world`` ranks that communicates nothing, this process rank 0;
    yields its device mesh (made here: not under fake tensors, which have no values)."""
    import torch.distributed as dist

    if not dist.is_available():
        raise ShardingError("this torch has no torch.distributed")
    try:
        from torch.testing._internal.distributed.fake_pg import FakeStore
    except ImportError as exc:
        raise ShardingError(f"this torch has no fake process group ({exc})") from exc
    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world)
    try:
        from torch.distributed.device_mesh import init_device_mesh

        yield init_device_mesh("cpu", (world,))
    finally:
        dist.destroy_process_group()


def units(model: nn.Module, names: tuple[str, ...]) -> list[nn.Module]:
    """The modules FSDP wraps one by one: those of the named classes, else the members of
    the group of repeated blocks holding the most parameters."""
    if names:
        return [m for m in model.modules() if m is not model and type(m).__name__ in names]
    best: list[nn.Module] = []
    best_size = 0
    for group in repeats.groups(model):
        size = sum(p.numel() for m in group for p in m.parameters())
        if size > best_size and len(group) > 1:
            best, best_size = group, size
    return [m for m in best if m is not model]


def shard(model: nn.Module, strategy: str, mesh: Any, wrap: tuple[str, ...]) -> int:
    """``fully_shard`` on each unit, then on the model (inside :func:`fake_group`, on fake
    CPU tensors); how many units."""
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:
        try:
            from torch.distributed._composable.fsdp import (  # type: ignore[attr-defined, no-redef, unused-ignore]
                fully_shard,  # torch 2.4, 2.5
            )
        except ImportError as exc:
            raise ShardingError(f"this torch has no FSDP2 (fully_shard): {exc}") from exc
    keep = strategy == "zero2"
    found = units(model, wrap)
    for unit in found:
        fully_shard(unit, mesh=mesh, reshard_after_forward=not keep)
    fully_shard(model, mesh=mesh, reshard_after_forward=not keep)
    return len(found)


def rank_share(params: list[torch.Tensor], world: int) -> list[torch.Tensor]:
    """The parameters whose optimizer state rank 0 keeps under ``ZeroRedundancyOptimizer``:
    largest first, each to the rank with the fewest elements so far."""
    loads = [0] * world
    mine: list[torch.Tensor] = []
    for p in sorted(params, key=lambda t: -t.numel()):
        rank = loads.index(min(loads))
        loads[rank] += p.numel()
        if rank == 0:
            mine.append(p)
    chosen = {id(p) for p in mine}
    return [p for p in params if id(p) in chosen]


def bucket_bytes(params: list[torch.Tensor]) -> int:
    """What DDP's reducer allocates for its gradient buckets: the trainable parameters'
    gradients, once more."""
    return sum(p.numel() * p.element_size() for p in params if p.requires_grad)


def local(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor's shard on this rank; any other tensor itself."""
    inner = getattr(tensor, "_local_tensor", None)
    return inner if isinstance(inner, torch.Tensor) else tensor
