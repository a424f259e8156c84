"""The shapes each workspace line of forward() assigns or returns (for inline hints):
a line tracer limited to workspace frames, off inside torch's ops.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import linecache
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from ..protocol import InlineShape
from .counters import shape_text

_MAX_INLINE = 4  # distinct shapes kept per line


@functools.cache  # a job's files do not change while it runs (each job is a fresh process)
def _targets(filename: str) -> dict[int, list[tuple[str, int]]]:
    """Line -> the names its statement assigns, each with the column after it (``return``
    lines get the name ``return``). Parsed once per file and job: parsing a big model
    file costs as much as a whole forward() on meta."""
    source = "".join(linecache.getlines(filename))
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    found: dict[int, list[tuple[str, int]]] = {}

    def names(target: ast.expr) -> Iterator[ast.Name]:
        if isinstance(target, ast.Name):
            yield target
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                yield from names(element)

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = [n for t in node.targets for n in names(t)]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = list(names(node.target))
        elif isinstance(node, ast.Return) and node.value is not None:
            found.setdefault(node.lineno, []).append(("return", node.col_offset + len("return")))
            continue
        else:
            continue
        for name in targets:
            if name.end_col_offset is not None:
                found.setdefault(node.lineno, []).append((name.id, name.end_col_offset))
    return found


class LineShapes:
    """A tracer for workspace frames: after each assignment line, the shapes of the
    tensors it assigned; on ``return``, the shape returned."""

    def __init__(self, is_user_file: Callable[[str], bool]) -> None:
        self.is_user_file = is_user_file
        self.shapes: dict[tuple[str, int, int, str], list[str]] = {}
        self._user: dict[str, bool] = {}
        self._last: dict[types.FrameType, int] = {}

    def _record(self, frame: types.FrameType, line: int, value_of: Callable[[str], object]) -> None:
        filename = frame.f_code.co_filename
        for name, column in _targets(filename).get(line, ()):
            value = value_of(name)
            if not isinstance(value, (torch.Tensor, tuple, list)):
                continue
            text = shape_text(value)
            if text[:1] not in "[(":
                continue
            seen = self.shapes.setdefault((filename, line, column, name), [])
            if text not in seen and len(seen) < _MAX_INLINE:
                seen.append(text)

    def trace(self, frame: types.FrameType, event: str, arg: object) -> Any:
        filename = frame.f_code.co_filename
        user = self._user.get(filename)
        if user is None:
            user = self._user[filename] = self.is_user_file(filename)
        if not user:
            return None
        return self._local

    def _local(self, frame: types.FrameType, event: str, arg: object) -> Any:
        previous = self._last.get(frame)
        if (
            previous is not None
            and event in ("line", "return")
            and previous in _targets(frame.f_code.co_filename)
        ):
            local_vars = frame.f_locals  # a snapshot: costly, so only after an assignment
            self._record(frame, previous, local_vars.get)
        if event == "line":
            self._last[frame] = frame.f_lineno
        elif event == "exception":  # the line raised: it assigned nothing
            self._last.pop(frame, None)
        elif event == "return":
            self._last.pop(frame, None)
            self._record(frame, frame.f_lineno, lambda name: arg if name == "return" else None)
        return self._local

    def result(self) -> tuple[InlineShape, ...]:
        return tuple(
            InlineShape(file, line, column, name, tuple(shapes))
            for (file, line, column, name), shapes in sorted(self.shapes.items())
        )

    @contextlib.contextmanager
    def tracing(self) -> Iterator[None]:
        """Trace forward(), but not inside torch's ops (see :class:`_OpsUntraced`)."""
        previous = sys.gettrace()
        with _OpsUntraced(self.trace):
            sys.settrace(self.trace)
            try:
                yield
            finally:
                sys.settrace(previous)


class _OpsUntraced(TorchFunctionMode):
    """Each torch op runs with the tracer off. A tracer is called on every Python call;
    on meta, an op's kernel is Python (torch's meta registrations and decompositions), so
    tracing inside ops would double forward()'s time for nothing. What an op calls back (a
    tensor subclass's own Python) goes untraced too; the user's lines around it do not."""

    def __init__(self, tracer: Callable[..., Any]) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        sys.settrace(None)
        try:
            return func(*args, **(kwargs or {}))
        finally:
            sys.settrace(self.tracer)
