"""What every class of one job is built with (:class:`BuildContext`).

Runs in the worker (standard library + torch), inside a build child.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..protocol import ErrorInfo
from .errors import error_from_exception
from .sites import SiteRecorder


@dataclasses.dataclass
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
    optimizer: str = "adamw"  # whose state the training-memory estimate counts
    dims: tuple[tuple[str, int], ...] = ()  # named dimensions of shape annotations
    precision: str = "fp32"  # training memory under "bf16" or "fp16" autocast
    line_shapes: bool = True  # trace forward()'s lines for the shapes they assign

    def error(self, exc: BaseException) -> ErrorInfo:
        return error_from_exception(exc, self.is_user_file, self.memory_mb)
