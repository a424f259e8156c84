"""What every class of one job is built with (:class:`BuildContext`).

Runs in the worker (standard library + torch), inside a build child.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..forward.parents import ParentCalls
from ..protocol import ErrorInfo, ModelResult, Training
from .errors import error_from_exception
from .sites import SiteRecorder


@dataclasses.dataclass(kw_only=True)  # thirteen fields: built by name, never by position
class BuildContext:
    """What every class of one job is built with."""

    namespace: dict[str, object]  # the module's
    file: str
    device: str
    recorder: SiteRecorder
    is_user_file: Callable[[str], bool]
    memory_mb: int
    # module classes whose per-line figures a factory of this job already kept; None: keep all
    detailed: set[str] | None = None
    shapes: bool = True  # run forward() with an example input
    training: Training = dataclasses.field(default_factory=Training)  # the simulated step's
    dims: tuple[tuple[str, int], ...] = ()  # named dimensions of shape annotations
    line_shapes: bool = True  # trace forward()'s lines for the shapes they assign
    # what blocks were called with inside this job's models (a block's forward() arguments)
    parents: ParentCalls = dataclasses.field(default_factory=ParentCalls)
    # each class's result before its training step, as it will be but for the step
    on_staged: Callable[[ModelResult], None] | None = None

    def error(self, exc: BaseException) -> ErrorInfo:
        return error_from_exception(exc, self.is_user_file, self.memory_mb)
