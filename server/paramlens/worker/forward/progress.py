"""Where a simulated training step is: its phase, the module running (in backward, the one
whose forward() made the autograd node running), and each module's part of the memory.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from ..protocol import ModuleMemory

SHOWN_MODULES = 10


class Progress:
    """Which phase and module the step is in; each module's part (what its forward()
    keeps, the highest total while it runs, forward or backward)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.phase = ""
        self.paths = {id(m): n for n, m in model.named_modules()}
        self.types = {n: _class_name(m) for n, m in model.named_modules()}
        self.stack: list[tuple[str, int]] = []  # (path, total at its start)
        self.kept: dict[str, int] = {}
        self.peaks: dict[str, int] = {}
        self.order: list[str] = []
        self.owner: dict[torch.autograd.graph.Node, str] = {}  # autograd node -> module
        self.stops: list[set[torch.autograd.graph.Node]] = []
        self.total = 0

    def now(self) -> tuple[str, str]:
        return self.phase, self.current()

    def current(self) -> str:
        if self.phase == "backward":
            node = _current_node()
            return self.owner.get(node, "") if node is not None else ""
        if self.phase == "forward" and self.stack:
            return self.stack[-1][0]
        return ""

    def changed(self, total: int) -> None:
        self.total = total
        if self.phase not in ("forward", "backward"):
            return
        path = self.current()
        while True:
            if total > self.peaks.get(path, 0):
                self.peaks[path] = total
            if not path:
                break
            path = path.rpartition(".")[0]

    @contextlib.contextmanager
    def hooks(self) -> Iterator[None]:
        handles = []
        for module in self.model.modules():
            handles.append(module.register_forward_pre_hook(self._pre))
            handles.append(module.register_forward_hook(self._post))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self.phase != "forward":
            return
        path = self.paths.get(id(module), "?")
        if path not in self.kept:
            self.order.append(path)
            self.kept[path] = 0
        self.stack.append((path, self.total))
        self.stops.append({t.grad_fn for t in flat_tensors(args) if t.grad_fn is not None})

    def _post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self.phase != "forward" or not self.stack:
            return
        path, start = self.stack.pop()
        stops = self.stops.pop()
        self.kept[path] = self.kept.get(path, 0) + self.total - start
        # the autograd nodes this call made belong to it (inner calls claimed theirs first)
        todo = [t.grad_fn for t in flat_tensors(output) if t.grad_fn is not None]
        while todo:
            node = todo.pop()
            if node in self.owner or node in stops:
                continue
            self.owner[node] = path
            todo.extend(n for n, _ in node.next_functions if n is not None)

    def top_modules(self) -> tuple[ModuleMemory, ...]:
        # the model's children and theirs, and the blocks of its lists (``h.0``, ``h.11``)
        shown = [p for p in self.order if p and p.count(".") < 3]
        shown.sort(key=lambda p: -self.kept.get(p, 0))
        return tuple(
            ModuleMemory(p, self.types.get(p, "?"), self.kept.get(p, 0), self.peaks.get(p, 0))
            for p in shown[:SHOWN_MODULES]
        )


def flat_tensors(value: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(plain(value))[0] if isinstance(t, torch.Tensor)]


def _current_node() -> torch.autograd.graph.Node | None:
    current = getattr(torch._C, "_current_autograd_node", None)
    return current() if current is not None else None


def _class_name(module: nn.Module) -> str:
    """The module's class; for a module FSDP2 sharded (class ``FSDPBlock``), ``Block``."""
    cls = type(module)
    if any(base.__name__ == "FSDPModule" for base in cls.__bases__):
        cls = cls.__bases__[-1]
    return cls.__name__


def plain(output: Any) -> Any:
    """transformers' ModelOutput and other dict-likes as plain containers."""
    if hasattr(output, "to_tuple") and callable(output.to_tuple):
        return output.to_tuple()
    return output
