"""Where a constructor's tensors are made: on meta (no weight memory), with small tensors
on the CPU for a constructor that reads values, or on the CPU; weight initialisation
skipped throughout.

Runs in the worker (standard library + torch), inside a build child.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import linecache
import re
import types
import typing
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..loader import code_objects
from ..protocol import ClassSpec
from .sites import SiteRecorder, recording


def _with_fields(config: object, **fields: object) -> object:
    """``config`` with fields its project leaves to the caller set (a config method's
    ``vocab_size = None``): items of a dict, attributes of anything else."""
    for name, value in fields.items():
        if isinstance(config, dict):
            config[name] = value
        else:
            setattr(config, name, value)
    return config


def _in_module(module: str, expression: str) -> object:
    """``expression`` evaluated in the namespace of the workspace module ``module`` (a
    script's own ``Generator(ngpu)``, with the values its module-level statements made)."""
    namespace = importlib.import_module(module).__dict__
    return eval(compile(expression, f"<paramlens: {module}>", "eval"), namespace)


# what constructor expressions may call besides the module's own names
HELPERS = {"__paramlens_fields__": _with_fields, "__paramlens_in__": _in_module}


def namespace_for(spec: ClassSpec, module_namespace: dict[str, object]) -> dict[str, object]:
    """The module's namespace plus the workspace names the expression refers to."""
    helpers = any("__paramlens_" in c for c in (spec.ctor or "", *spec.alternatives))
    if not spec.refs and not helpers:
        return module_namespace
    namespace = dict(module_namespace)
    if helpers:
        namespace.update(HELPERS)
    for name, target in spec.refs:
        namespace[name] = _resolve(target)
    return namespace


def _resolve(qualified: str) -> object:
    """``pkg.mod.Name``: the longest importable module prefix, then attributes."""
    parts = qualified.split(".")
    for split in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            value = getattr(value, attr)
        return value
    raise ImportError(f"cannot import {qualified}")


def compiled(ctor: str, spec: ClassSpec) -> types.CodeType:
    return compile(ctor, f"<paramlens: {spec.ctor_source or spec.name}>", "eval")


_INIT_SKIP_NUMEL = 1 << 16


class SkipWeightInit(TorchFunctionMode):
    """While building, in-place writes to parameters and large tensors do nothing.

    Weight initialisation (``nn.init.*``, ``reset_parameters``, timm's ``trunc_normal_``)
    is all in-place ops on parameters, and nobody reads those values: on the CPU fallback,
    filling 86M of them costs seconds; on meta, their decompositions still cost 60% of a
    ViT's build. Small tensors (schedules, masks read with ``.item()``) compute as usual.
    """

    def __torch_function__(
        self,
        func: Callable[..., object],
        types: object,
        args: Sequence[object] = (),
        kwargs: dict[str, object] | None = None,
    ) -> object:
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__") and name != "requires_grad_":
            # ``nn.init.normal_(w)`` reaches a mode as ``tensor=w``; ``w.normal_()`` as args
            target = args[0] if args else (kwargs or {}).get("tensor")
            if isinstance(target, nn.Parameter) or (
                isinstance(target, torch.Tensor) and target.numel() >= _INIT_SKIP_NUMEL
            ):
                return target
        return func(*args, **(kwargs or {}))


def construct(
    code: types.CodeType,
    namespace: dict[str, object],
    placement: contextlib.AbstractContextManager[object],
    recorder: SiteRecorder,
) -> object:
    """Evaluate the constructor expression with tensors made where ``placement`` puts them
    (``torch.device("meta")``, or :class:`SmallOnCpu`), weight initialisation skipped."""
    recorder.clear()
    with recording(recorder), SkipWeightInit(), placement:
        return eval(code, namespace)


_SMALL_NUMEL = 1 << 12  # built on the CPU when a constructor reads values


_READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.__index__,
}


# a constructor that reads a tensor's value, in the source of an __init__
_READ_CALL = re.compile(r"\.(item|tolist)\(\)")


@functools.cache  # as code_objects: a job's files do not change while it runs
def init_reads_values(filename: str) -> bool:
    """Does an ``__init__`` written in this file call ``.item()`` or ``.tolist()`` (timm's
    ``[x.item() for x in torch.linspace(0, rate, depth)]``)? Its classes are then built
    with small tensors on the CPU at once: on meta, everything the constructor did before
    that call (vit-pytorch's CCT: 4 s of Python) would run twice."""
    if not _READ_CALL.search("".join(linecache.getlines(filename))):
        return False  # most files: no compiling
    return any(
        in_init and not {"item", "tolist"}.isdisjoint(code.co_names)
        for code, in_init in code_objects(filename)
    )


_SMALL_BUDGET_BYTES = 64 << 20  # all of them together; past that, meta again


class SmallOnCpu(TorchFunctionMode):
    """Tensors made with no device named: on the CPU if small, where their values can be
    read (timm-style ``[x.item() for x in torch.linspace(0, 0.1, depth)]``), else on meta,
    as parameters are (and a constructor's trial forward() on an 8-frame video clip)."""

    def __init__(self) -> None:
        super().__init__()
        from torch.utils._device import _device_constructors

        self.factories = _device_constructors()
        self.left = _SMALL_BUDGET_BYTES
        # did the constructor read a value (.item(), .tolist(), if t:) once it had small
        # tensors on the CPU? (a tensor it made on the CPU itself says nothing of meta)
        self.read = False

    def __torch_function__(
        self,
        func: Callable[..., object],
        types: object,
        args: Sequence[object] = (),
        kwargs: dict[str, object] | None = None,
    ) -> object:
        kwargs = kwargs or {}
        if func in _READS and self.left < _SMALL_BUDGET_BYTES:  # it read, after we placed
            self.read = True
        if func not in self.factories or kwargs.get("device") is not None:
            return func(*args, **kwargs)
        made = func(*args, **{**kwargs, "device": "meta"})  # its size, for nothing
        if isinstance(made, torch.Tensor) and made.numel() <= _SMALL_NUMEL:
            size = made.numel() * made.element_size()
            if size <= self.left:
                self.left -= size
                return func(*args, **{**kwargs, "device": "cpu"})
        return made


def hold_on_meta(model: object) -> None:
    """Move what the model holds (parameters, buffers) to meta, each tensor once: tied
    weights stay tied."""
    if not isinstance(model, nn.Module):
        return
    moved: dict[int, torch.Tensor] = {}

    def to_meta(tensor: torch.Tensor) -> torch.Tensor:
        if id(tensor) not in moved:
            meta = tensor.detach().to("meta")
            if isinstance(tensor, nn.Parameter):
                meta = nn.Parameter(meta, requires_grad=tensor.requires_grad)
            moved[id(tensor)] = meta
        return moved[id(tensor)]

    for module in model.modules():
        for name, param in module._parameters.items():
            if param is not None and not param.is_meta:
                module._parameters[name] = typing.cast(nn.Parameter, to_meta(param))
        for name, buffer in module._buffers.items():
            if buffer is not None and not buffer.is_meta:
                module._buffers[name] = to_meta(buffer)
