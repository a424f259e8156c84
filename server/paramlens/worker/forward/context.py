"""What forward() runs with, besides the model and its input (:class:`ForwardContext`).

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from torch import nn

from ..protocol import ErrorInfo
from .parents import ParentCalls


@dataclasses.dataclass(frozen=True)
class ForwardContext:
    """What forward() runs with, besides the model and its input."""

    namespace: dict[str, object]  # where the input expression is evaluated
    device: str
    is_user_file: Callable[[str], bool]
    error_from: Callable[[BaseException], ErrorInfo]
    names: Mapping[int, str]  # id(module) -> its dotted path in the model
    site: Callable[[nn.Module], tuple[str, int] | None]  # the line that declared a module
    dims: Mapping[str, int]  # values of named dimensions in shape annotations
    # trace forward()'s lines for the shapes they assign (costs a little: off in the CLI's
    # tables, which do not show them)
    line_shapes: bool = True
    # what the model's constructor was called with (its sizes: ``image_size=32``)
    arguments: Mapping[str, object] = dataclasses.field(default_factory=dict)
    # the arguments blocks got inside the models of this job that ran before
    parents: ParentCalls = dataclasses.field(default_factory=ParentCalls)
    # time.monotonic() past which no further input is tried (the budget's alarm may have
    # been swallowed by the model's code); None: no limit
    deadline: float | None = None
