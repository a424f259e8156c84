"""How the worker and each zygote start: torch imported once, the meta device warmed,
what was imported frozen out of the garbage collector's sight before anything forks.

Standard library + torch only.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import types
from collections.abc import Iterator
from typing import Any


class _DeferredDynamo(types.ModuleType):
    """``torch._dynamo`` until something really uses it.

    torch's meta decompositions are wrapped in ``torch._disable_dynamo``, which imports
    torch._dynamo (over a second here) the first time one runs, only to wrap the function
    so that torch.compile does not trace it; an optimizer's step calls ``graph_break``.
    Nothing compiles in the worker: until code asks for anything else, ``disable`` returns
    the function as it is, ``graph_break`` does nothing, and the first other
    attribute (``config``, ``__path__`` for a submodule...) imports the
    real module, which takes this one's place.
    """

    def disable(
        self, fn: Any = None, recursive: bool = True, wrapping: bool = True, **kwargs: Any
    ) -> Any:
        return fn if fn is not None else (lambda f: f)

    def graph_break(self) -> None:
        """``torch.optim``'s step calls this for torch.compile; outside it, nothing."""

    def is_compiling(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def defer_dynamo() -> None:
    if "torch._dynamo" not in sys.modules:
        sys.modules["torch._dynamo"] = _DeferredDynamo("torch._dynamo")


@contextlib.contextmanager
def frozen_when_imported() -> Iterator[None]:
    """No garbage collection while big packages import (torch, a zygote's package), then
    what they made frozen out of the collector's sight, as gc.freeze's documentation
    advises a parent that forks: otherwise collections walk torch's objects again and
    again while they are made, and later in every child."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def warm_meta() -> None:
    """Build a few layers on meta once: the first meta build imports ~800 modules."""
    import torch
    from torch import nn

    with torch.device("meta"):
        layers = nn.Sequential(
            nn.Linear(4, 4),
            nn.Conv2d(1, 2, 3),
            nn.BatchNorm2d(2),
            nn.LayerNorm(4),
            nn.Embedding(4, 4),
            nn.MultiheadAttention(4, 2),
            nn.LSTM(4, 4),
            nn.TransformerEncoderLayer(4, 2, 8),
        )
        sum(p.numel() for p in layers.parameters())
