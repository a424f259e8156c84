"""Live storages by kind, and their peak: the accounting behind the simulated training step.

Every tensor an operator returns is looked at through a ``TorchDispatchMode``; each new
storage is counted once, at its size, under the kind of memory it is (an activation made
in forward(), a temporary of backward(), a gradient, optimizer state...) and uncounted when
Python frees it (a weak reference's callback). This is what PyTorch's own
``torch.distributed._tools.mem_tracker.MemTracker`` does, in a form that runs on every
torch from 2.1 and on meta tensors, fake tensors and real ones alike; the tests compare the
two where the user's torch has MemTracker.

Besides the exact bytes, a second running total rounds each storage as the CUDA caching
allocator does (up to a multiple of 512 bytes): the GPU's ``max_memory_allocated``.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from . import meta_ops

KINDS = (
    "parameters",
    "buffers",
    "inputs",
    "activations",
    "gradients",
    "optimizer_state",
    "temporaries",
)
CUDA_BLOCK = 512  # the CUDA caching allocator rounds every allocation up to this
# The CUDA caching allocator's pools: allocations up to 1 MiB share 2 MiB segments, those up
# to 10 MiB share 20 MiB segments, larger ones get their own, rounded up to 2 MiB
SMALL_ALLOCATION, SMALL_SEGMENT = 1 << 20, 2 << 20
MEDIUM_ALLOCATION, MEDIUM_SEGMENT = 10 << 20, 20 << 20
LARGE_ROUNDING = 2 << 20


def _up(nbytes: int, unit: int) -> int:
    return -(-nbytes // unit) * unit


def cuda_rounded(nbytes: int) -> int:
    return _up(nbytes, CUDA_BLOCK)


@dataclasses.dataclass
class _Entry:
    kind: str
    nbytes: int


@dataclasses.dataclass
class Snapshot:
    """The live bytes by kind at one moment, and where the step was."""

    total: int = 0
    by_kind: dict[str, int] = dataclasses.field(default_factory=dict)
    phase: str = ""
    module: str = ""


def storages_are_tracked() -> bool:
    """Whether a storage keeps one Python object while it lives (torch 2.2 and later):
    :class:`Storages` watches each storage's end through a weak reference to it. torch 2.1
    makes a new object at each ``untyped_storage()``, which dies at once, and the weak
    references then crash its garbage collector; asked without making one."""
    tensor = torch.empty(1, device="meta")
    return tensor.untyped_storage() is tensor.untyped_storage()


class Storages(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Counts the live storages on ``device`` (a device type: "meta", "cpu") by kind.

    ``kind_of_new`` says what a storage made now is (the step sets it by phase);
    ``where`` says which phase and module is running, for the peak's record."""

    def __init__(self, device: str, where: Callable[[], tuple[str, str]]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.device = device
        self.where = where
        self.kind_of_new = "activations"
        self.entries: dict[int, tuple[_Entry, weakref.ref[Any]]] = {}
        self.live = dict.fromkeys(KINDS, 0)
        self.total = 0
        self.rounded = 0  # each storage rounded up to 512 B: the CUDA allocator's view
        # live storages by allocator pool (rounded), for the estimate of what it reserves
        self.small = 0
        self.medium = 0
        self.large_segments = 0  # each rounded up to 2 MiB
        self.peak = Snapshot()
        self.rounded_peak = 0
        self.reserved_peak = 0
        self.tracking_peak = False
        self.on_change: Callable[[int], None] | None = None  # told each new total
        self._resize: Any = None
        self.matmul = False  # a matrix multiply ran: on CUDA, cuBLAS took its workspace

    # -- counting -----------------------------------------------------------------------

    def track(self, tensor: torch.Tensor, kind: str | None = None) -> None:
        """Count ``tensor``'s storage (as ``kind``, else the kind of what is made now) if it
        is new and on the tracked device."""
        if tensor.device.type != self.device or _is_subclass(tensor):
            return
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self.entries:
            return
        entry = _Entry(kind or self.kind_of_new, storage.nbytes())
        ref = weakref.ref(storage, lambda _, key=key: self._freed(key))  # type: ignore[misc]
        self.entries[key] = (entry, ref)
        self._add(entry, 1)

    def reclassify(self, tensor: torch.Tensor, kind: str) -> None:
        """``tensor``'s storage is now ``kind`` (a temporary of backward became a gradient)."""
        if tensor.device.type != self.device:
            return
        found = self.entries.get(tensor.untyped_storage()._cdata)
        if found is None:
            self.track(tensor, kind)
            return
        entry = found[0]
        if entry.kind != kind:
            self.live[entry.kind] -= entry.nbytes
            self.live[kind] += entry.nbytes
            entry.kind = kind

    def _freed(self, key: int) -> None:
        found = self.entries.pop(key, None)
        if found is not None:
            self._add(found[0], -1)

    def _add(self, entry: _Entry, sign: int) -> None:
        nbytes = entry.nbytes
        self.live[entry.kind] += sign * nbytes
        self.total += sign * nbytes
        rounded = cuda_rounded(nbytes)
        self.rounded += sign * rounded
        if rounded <= SMALL_ALLOCATION:
            self.small += sign * rounded
        elif rounded <= MEDIUM_ALLOCATION:
            self.medium += sign * rounded
        else:
            self.large_segments += sign * _up(rounded, LARGE_ROUNDING)
        if sign > 0:
            self._check_peak()
        if self.on_change is not None:
            self.on_change(self.total)

    def _check_peak(self) -> None:
        if not self.tracking_peak:
            return
        if self.total > self.peak.total:
            phase, module = self.where()
            self.peak = Snapshot(self.total, dict(self.live), phase, module)
        if self.rounded > self.rounded_peak:
            self.rounded_peak = self.rounded
            # the allocator's segments, packed without fragmentation (an estimate)
            reserved = (
                _up(self.small, SMALL_SEGMENT)
                + _up(self.medium, MEDIUM_SEGMENT)
                + self.large_segments
            )
            self.reserved_peak = max(self.reserved_peak, reserved)

    def start_peak(self) -> None:
        """Track the peak from now on (the steady-state step, after the warm-up)."""
        self.tracking_peak = True
        self.peak = Snapshot()
        self.rounded_peak = 0
        self.reserved_peak = 0
        self._check_peak()

    # -- the dispatcher -----------------------------------------------------------------

    def __torch_dispatch__(  # type: ignore[no-untyped-def]
        self, func, types, args=(), kwargs=None
    ):
        if any(_wraps_tensors(t) for t in types):
            # a DTensor's op: let it run its shards' ops, which come back here
            return NotImplemented
        if self.device == "meta":
            out = meta_ops.META_OPS.run(func, args, kwargs or {})
        else:
            out = func(*args, **(kwargs or {}))
        if func.overloadpacket in _MATMULS:
            self.matmul = True
        kind = _OP_KINDS.get(func._schema.name)
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.track(value)
                if kind is not None:
                    self.reclassify(value, kind)
        return out

    def __enter__(self) -> Storages:
        # UntypedStorage.resize_ bypasses the dispatcher (FSDP frees this way, some ops too)
        self._resize = torch.UntypedStorage.resize_
        original = self._resize

        def resize_(storage: Any, size: int) -> Any:
            result = original(storage, size)
            found = self.entries.get(storage._cdata)
            if found is not None and found[0].nbytes != storage.nbytes():
                self._add(found[0], -1)
                found[0].nbytes = storage.nbytes()
                self._add(found[0], 1)
            return result

        torch.UntypedStorage.resize_ = resize_  # type: ignore[method-assign, assignment]
        super().__enter__()  # type: ignore[no-untyped-call]
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)  # type: ignore[no-untyped-call]
        torch.UntypedStorage.resize_ = self._resize  # type: ignore[method-assign]


_MATMULS = {
    torch.ops.aten.mm,
    torch.ops.aten.addmm,
    torch.ops.aten.bmm,
    torch.ops.aten.baddbmm,
}


# FSDP's buffers, by the op that fills them: the all-gathered parameters of a unit, and a
# unit's unsharded gradients on their way to the reduce-scatter
_OP_KINDS = {"fsdp::all_gather_copy_in": "parameters", "fsdp::chunk_cat": "gradients"}


def _wraps_tensors(cls: type) -> bool:
    """A tensor subclass wrapping others (DTensor...): its inner tensors are what is held."""
    return cls not in (torch.Tensor, torch.nn.Parameter) and cls.__name__ != "FakeTensor"


def _is_subclass(tensor: torch.Tensor) -> bool:
    return _wraps_tensors(type(tensor))


def _is_fake(tensor: torch.Tensor) -> bool:
    return type(tensor).__name__ == "FakeTensor"
