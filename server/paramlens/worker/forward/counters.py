"""What each module call sees during forward(): its input and output shapes, its
multiply-adds (torch's own FLOP formulas) and the bytes autograd saves for backward.

Shared by the run (:mod:`.run`) and by replayed blocks (:mod:`.repeats`), which add to
the same counters. Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from . import meta_ops


@dataclasses.dataclass
class ModuleCall:
    inputs: str
    output: str
    macs: int = 0
    saved: int = 0  # bytes autograd saved for backward during the call (its children's too)


def shape_text(value: object) -> str:
    """``[1, 512]`` for a tensor, ``([1, 4], [1, 4])`` for a tuple of tensors..."""
    if isinstance(value, torch.Tensor):
        return "[" + ", ".join(str(int(d)) for d in value.shape) + "]"
    if isinstance(value, (tuple, list)) and value:
        parts = [shape_text(v) for v in value[:4]]
        more = ", …" if len(value) > 4 else ""
        return f"({', '.join(parts)}{more})"
    if isinstance(value, Mapping) and value:
        items = [f"{k}: {shape_text(v)}" for k, v in list(value.items())[:4]]
        return "{" + ", ".join(items) + "}"
    if hasattr(value, "to_tuple") and callable(value.to_tuple):  # transformers' ModelOutput
        return shape_text(value.to_tuple())
    return type(value).__name__


class Calls:
    """Every module call's shapes, by module, and the calls in progress (a stack)."""

    def __init__(self) -> None:
        self.by_module: dict[int, list[ModuleCall]] = {}
        # the calls in progress: module, its arguments, their shapes, bytes saved so far
        self.stack: list[tuple[nn.Module, tuple[Any, ...], str, list[int]]] = []

    def pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        shown = shape_text(args[0] if len(args) == 1 else args) if args else shape_text(kwargs)
        self.stack.append((module, args, shown, [0]))

    def post(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        if self.stack and self.stack[-1][0] is module:
            _, _, shown, saved = self.stack.pop()
            call = ModuleCall(shown, shape_text(output), saved=saved[0])
            self.by_module.setdefault(id(module), []).append(call)

    def saved(self, nbytes: int) -> None:
        """Autograd saved ``nbytes`` for backward: during every call in progress."""
        for _, _, _, saved in self.stack:
            saved[0] += nbytes


class MultiplyAdds(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """FLOPs by torch's own formulas (FlopCounterMode's), for the whole of forward() and for
    each module on the call stack. FlopCounterMode itself also tracks modules through
    backward hooks on every output, which costs more than the meta forward() does."""

    def __init__(self, calls: Calls) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.registry = flop_formulas()
        self.calls = calls
        self.flops = 0
        self.by_module: dict[int, int] = {}
        self.created: list[object] | None = None  # while a repeated block is recorded

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        formula = self.registry.get(func._overloadpacket)
        if formula is None and func is not torch.ops.prim.device.default:
            with self:  # a composite op: count the ops it is made of (as FlopCounterMode does)
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = meta_ops.META_OPS.run(func, args, kwargs)
        if self.created is not None:
            self.created.append(out)
        if formula is not None:
            self.count(int(formula(*args, **kwargs, out_val=out)))
        return out

    def count(self, flops: int) -> None:
        """``flops`` done: in all, and by every module whose call is in progress."""
        self.flops += flops
        for module_id in {id(module) for module, _, _, _ in self.calls.stack}:
            self.by_module[module_id] = self.by_module.get(module_id, 0) + flops


@functools.cache  # one lookup per build child, not one per forward() attempt
def flop_formulas() -> Mapping[Any, Callable[..., int]]:
    """torch's FLOP formulas by op packet, each called with the op's arguments and
    ``out_val=`` its output, on every torch since 2.1: torch 2.1 keeps formulas of shapes
    (``out_shape=``) in ``flop_mapping``; 2.2 has ``flop_registry`` with the output as
    ``out=``; later ones as ``out_val=``."""
    from torch.utils import flop_counter

    names = vars(flop_counter)
    registry: Mapping[Any, Callable[..., int]] | None = names.get("flop_registry")
    if registry is None:  # torch 2.1: adapted as torch 2.2's ``shape_wrapper`` does
        shapes = names["get_shape"]
        return {packet: _of_shapes(f, shapes) for packet, f in names["flop_mapping"].items()}
    wrapped = flop_counter.shape_wrapper(lambda: 0)  # type: ignore[no-untyped-call]
    if "out" in inspect.signature(wrapped, follow_wrapped=False).parameters:  # torch 2.2
        return {packet: _out_renamed(f) for packet, f in registry.items()}
    return registry


def _of_shapes(formula: Callable[..., int], shape: Callable[[Any], Any]) -> Callable[..., int]:
    from torch.utils._pytree import tree_map

    def on_values(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
        args, kwargs, out_shape = tree_map(shape, (args, kwargs, out_val))
        return formula(*args, out_shape=out_shape, **kwargs)

    return on_values


def _out_renamed(formula: Callable[..., int]) -> Callable[..., int]:
    def with_out(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
        return formula(*args, out=out_val, **kwargs)

    return with_out


@contextlib.contextmanager
def hooked(model: nn.Module, calls: Calls) -> Iterator[None]:
    modules = list(model.modules())
    handles = [m.register_forward_pre_hook(calls.pre, with_kwargs=True) for m in modules]
    handles += [m.register_forward_hook(calls.post, with_kwargs=True) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class SavedForBackward:
    """The bytes of the tensors autograd saves for backward during forward() (what training
    holds on top of parameters, gradients and optimizer state), each tensor once; the
    parameters themselves, which backward also reads, are not counted again."""

    def __init__(self, model: nn.Module, calls: Calls | None = None) -> None:
        self.parameters = {id(p) for p in model.parameters()}
        self.seen: set[int] = set()
        self.kept: list[torch.Tensor] = []  # keeps ids unique while counting
        self.nbytes = 0
        self.calls = calls  # to say which module calls saved what

    def first_time(self, tensor: torch.Tensor) -> bool:
        """Mark ``tensor`` as saved; whether it was not already."""
        if id(tensor) in self.seen:
            return False
        self.seen.add(id(tensor))
        self.kept.append(tensor)
        return True

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        base = tensor if tensor._base is None else tensor._base
        if id(base) not in self.parameters and self.first_time(base):
            self.count(base.numel() * base.element_size())
        return tensor

    def count(self, nbytes: int) -> None:
        """``nbytes`` saved for backward: in all, and during every call in progress."""
        self.nbytes += nbytes
        if self.calls is not None:
            self.calls.saved(nbytes)

    def hooks(self) -> torch.autograd.graph.saved_tensors_hooks:
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda tensor: tensor)
