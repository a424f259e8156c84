"""The model as the simulated training step needs it, for as long as it needs it: on fake CPU
tensors, in another dtype, with checkpointed modules, or a copy to shard.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..layers import qualtype


def tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    yield from model.parameters()
    yield from model.buffers()


class VariantError(Exception):
    """The model cannot be made into the variant the step needs."""


def copied(model: nn.Module) -> nn.Module:
    import copy

    try:
        return copy.deepcopy(model)
    except Exception as exc:
        raise VariantError(f"the model cannot be copied to shard it: {exc}") from exc


@contextlib.contextmanager
def checkpointing(model: nn.Module, names: tuple[str, ...]) -> Iterator[int]:
    """The modules of those classes recompute their activations in backward
    (``torch.utils.checkpoint``, non-reentrant); yields how many there are."""
    from torch.utils.checkpoint import checkpoint

    wrapped = []
    if names:
        for module in model.modules():
            cls = type(module)
            if cls.__name__ in names or qualtype(module) in names:
                original = module.forward
                module.forward = functools.partial(checkpoint, original, use_reentrant=False)
                wrapped.append(module)
    try:
        yield len(wrapped)
    finally:
        for module in wrapped:
            del module.forward


@contextlib.contextmanager
def in_dtype(model: nn.Module, dtype: torch.dtype) -> Iterator[None]:
    """The model's floating parameters and buffers in ``dtype`` meanwhile."""
    before: list[tuple[torch.Tensor, torch.dtype]] = []
    for t in tensors(model):
        if t.is_floating_point() and t.dtype != dtype:
            before.append((t, t.dtype))
            t.data = t.data.to(dtype)
    try:
        yield
    finally:
        for t, old in before:
            t.data = t.data.to(old)


@contextlib.contextmanager
def on_fake_cpu(model: nn.Module) -> Iterator[None]:
    """The model's parameters and buffers swapped for fake CPU tensors (shapes and dtypes,
    no memory; tied ones stay tied), inside ``FakeTensorMode``."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    swapped: list[tuple[dict[str, Any], str, Any]] = []
    fakes: dict[int, torch.Tensor] = {}
    try:
        with FakeTensorMode(), torch.device("cpu"):
            for module in model.modules():
                tables: tuple[tuple[dict[str, Any], bool], ...] = (
                    (module._parameters, True),
                    (module._buffers, False),
                )
                for table, is_parameter in tables:
                    for name, tensor in table.items():
                        if tensor is None:
                            continue
                        if id(tensor) not in fakes:
                            fake = torch.empty(tensor.shape, dtype=tensor.dtype)
                            if is_parameter:
                                fake = nn.Parameter(fake, requires_grad=tensor.requires_grad)
                            fakes[id(tensor)] = fake
                        swapped.append((table, name, tensor))
                        table[name] = fakes[id(tensor)]
            yield
    finally:
        for table, name, tensor in reversed(swapped):
            table[name] = tensor
