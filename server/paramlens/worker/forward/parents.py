"""forward()'s arguments for a block whose forward() takes several tensors (llama2.c's
``Attention.forward(x, freqs_cos, freqs_sin)``, called from ``TransformerBlock``): the ones
a model that holds it passed to it when that model ran (:class:`ParentCalls`), written as
an input expression of the same shapes and dtypes.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from ..layers import qualtype

# ForwardInfo.input_source of such an input starts so (the rest: which class, which line)
PARENT_CALL = "as passed by"


def several_required(cls: object) -> bool:
    """Does ``cls`` (a module class) take two or more required arguments in forward()?
    Anything else is asked nothing: a class whose definition failed is the loader's
    placeholder, whose every attribute raises why (its build says so)."""
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        return False
    forward = getattr(cls, "forward", None)
    if forward is None or forward is nn.Module.forward:
        return False
    try:
        parameters = list(inspect.signature(forward).parameters.values())[1:]  # self
    except (TypeError, ValueError):
        return False
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    required = [p for p in parameters if p.default is p.empty and p.kind not in variadic]
    return len(required) >= 2


def _tensor(value: torch.Tensor) -> str:
    sizes = [str(int(d)) for d in value.shape]
    dtype = str(value.dtype).removeprefix("torch.")
    if value.dtype.is_floating_point or value.dtype.is_complex:
        suffix = [] if value.dtype == torch.float32 else [f"dtype=torch.{dtype}"]
        return f"torch.randn({', '.join([*(sizes or ['()']), *suffix])})"
    shape = f"({sizes[0]},)" if len(sizes) == 1 else f"({', '.join(sizes)})"
    if value.dtype == torch.bool:
        return f"torch.ones({shape}, dtype=torch.bool)"
    return f"torch.randint(0, 2, {shape}, dtype=torch.{dtype})"


def expression(value: object) -> str | None:
    """Python source for a value of the same kind: tensors of the same shapes and dtypes,
    plain values as they are; None for anything else (a cache object, a module)."""
    if isinstance(value, torch.Tensor):
        return _tensor(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        parts = [expression(v) for v in value]
        if any(p is None for p in parts):
            return None
        inner = ", ".join(p for p in parts if p is not None)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(parts) == 1 else f"({inner})"
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: expression(v) for k, v in value.items()}
        if any(v is None for v in items.values()):
            return None
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in items.items()) + "}"
    return None


def call_expression(
    forward: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str | None:
    """The arguments of one call as an input expression: a tuple of positional arguments,
    or, with keywords, every argument by name (bound to forward()'s signature)."""
    if not kwargs:
        return expression(tuple(args))
    try:
        bound = inspect.signature(forward).bind(*args, **kwargs)
    except TypeError:
        return None
    named: dict[str, object] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            return None
        if kind == inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        else:
            named[name] = value
    return expression(named)


class ParentCalls:
    """The first call of each workspace module class met inside a model that ran: its
    arguments (as an input expression) and where the parent called it, by class."""

    def __init__(self) -> None:
        self.by_class: dict[str, tuple[str, str]] = {}

    def wanted(self, cls: object) -> bool:
        """Is ``cls`` a block that takes several arguments and has no call recorded yet?"""
        if not several_required(cls):
            return False
        assert isinstance(cls, type)
        return f"{cls.__module__}.{cls.__qualname__}" not in self.by_class

    def get(self, model: nn.Module) -> tuple[str, str] | None:
        """(expression, source) for ``model``'s class, if a parent passed it arguments."""
        return self.by_class.get(qualtype(model))

    @contextlib.contextmanager
    def recording(self, model: nn.Module, is_user_file: Callable[[str], bool]) -> Iterator[None]:
        """While ``model`` runs, record the calls of the workspace blocks inside it whose
        forward() takes several arguments and whose class has none recorded yet. Their
        ``forward`` is wrapped, not hooked: llama2.c calls ``self.attention.forward(...)``,
        which no module hook sees."""
        wanted: dict[type, bool] = {}
        wrapped: list[tuple[nn.Module, Callable[..., Any] | None]] = []
        for module in list(model.modules())[1:]:
            cls = type(module)
            if cls not in wanted:
                source = getattr(sys.modules.get(cls.__module__), "__file__", None)
                wanted[cls] = isinstance(source, str) and is_user_file(source) and self.wanted(cls)
            if wanted[cls]:
                own = module.__dict__.get("forward")
                with contextlib.suppress(Exception):  # a module that refuses attributes
                    module.forward = self._recording(module, module.forward, is_user_file)
                    wrapped.append((module, own))
        try:
            yield
        finally:
            for module, own in wrapped:
                with contextlib.suppress(Exception):
                    if own is None:
                        del module.forward
                    else:
                        module.forward = own

    def _recording(
        self, module: nn.Module, forward: Callable[..., Any], is_user_file: Callable[[str], bool]
    ) -> Callable[..., Any]:
        key = qualtype(module)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            if key not in self.by_class:
                text = call_expression(forward, args, kwargs)
                if text is not None:
                    self.by_class[key] = (text, f"{PARENT_CALL} {_caller(is_user_file)}")
            return forward(*args, **kwargs)

        return recorded


def _caller(is_user_file: Callable[[str], bool]) -> str:
    """``Transformer at model.py:62``: the workspace line that called the block."""
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if is_user_file(code.co_filename):
            owner = frame.f_locals.get("self")
            name = type(owner).__name__ if isinstance(owner, nn.Module) else code.co_name
            return f"{name} at {os.path.basename(code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "its parent"
