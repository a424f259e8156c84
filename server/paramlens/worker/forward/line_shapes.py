"""The shapes each workspace line of forward() assigns or returns (for inline hints):
a line tracer limited to workspace frames, off inside torch's ops.

Runs in the worker: standard library and torch only.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import linecache
import sys
import textwrap
import tokenize
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from ..protocol import InlineShape
from .counters import shape_text

_MAX_INLINE = 4  # distinct shapes kept per line


Targets = dict[int, list[tuple[str, int]]]  # line -> (name, column after it)


def _found_targets(tree: ast.AST, line_offset: int = 0, column_offset: int = 0) -> Targets:
    """Line -> the names its statement assigns, each with the column after it (``return``
    lines get the name ``return``), in a tree parsed from a file's lines shifted by
    ``line_offset`` and dedented by ``column_offset``."""
    found: Targets = {}

    def names(target: ast.expr) -> Iterator[ast.Name]:
        if isinstance(target, ast.Name):
            yield target
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                yield from names(element)

    for node in ast.walk(tree):
        line = node.lineno + line_offset if isinstance(node, ast.stmt) else 0
        if isinstance(node, ast.Assign):
            targets = [n for t in node.targets for n in names(t)]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = list(names(node.target))
        elif isinstance(node, ast.Return) and node.value is not None:
            column = node.col_offset + column_offset + len("return")
            found.setdefault(line, []).append(("return", column))
            continue
        else:
            continue
        for name in targets:
            if name.end_col_offset is not None:
                found.setdefault(line, []).append((name.id, name.end_col_offset + column_offset))
    return found


@functools.cache  # a job's files do not change while it runs (each job is a fresh process)
def _file_targets(filename: str) -> Targets:
    """:func:`_found_targets` of a whole file, parsed once per job."""
    try:
        tree = ast.parse("".join(linecache.getlines(filename)))
    except (SyntaxError, ValueError):
        return {}
    return _found_targets(tree)


_EXPRESSIONS = frozenset({"<lambda>", "<genexpr>", "<listcomp>", "<setcomp>", "<dictcomp>"})


@functools.cache
def _targets(code: types.CodeType) -> Targets:
    """:func:`_found_targets` of the function of ``code``: its own lines parsed, not its
    whole file. forward() passes through a few functions of big files (transformers'
    modeling_utils.py, generic.py: thousands of lines each), and a job's child parsed each
    whole file again, a quarter of LLaMA-7B's forward() on meta. The whole file where the
    function's lines cannot be read alone (a module's body, a function whose lines do not
    parse by themselves)."""
    if code.co_name in _EXPRESSIONS:
        return {}  # a lambda's or comprehension's frame runs no statement
    lines = linecache.getlines(code.co_filename)
    first = code.co_firstlineno
    if code.co_name.startswith("<") or not 0 < first <= len(lines):
        return _file_targets(code.co_filename)
    try:
        block = inspect.getblock(lines[first - 1 :])
        source = "".join(block)
        indent = len(source) - len(source.lstrip(" \t"))
        tree = ast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError, IndentationError, tokenize.TokenError):
        return _file_targets(code.co_filename)
    if source[:indent].strip(" ") or "\t" in source[:indent]:
        return _file_targets(code.co_filename)  # tabs: columns are not dedented alike
    return _found_targets(tree, first - 1, indent)


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
        for name, column in _targets(frame.f_code).get(line, ()):
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
            and previous in _targets(frame.f_code)
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
