"""Errors as the user should see them: one line, at their deepest line that failed, with
a kind (:data:`..protocol.ErrorKind`).

Runs in the worker (standard library + torch), inside a build child.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable

from ..loader import Unavailable, UnavailableNameError, why_unavailable
from ..protocol import ClassSpec, ErrorInfo, exception_line, exception_text

BLOCKED_MARK = "while paramlens builds models"


class BuildTimeout(TimeoutError):
    """Raised by the worker's alarm when a constructor runs past the timeout."""


def _blocked_cause(exc: BaseException) -> BaseException | None:
    """The sandbox's own exception, however deep a library wrapped it (URLError.reason...)."""
    found = None
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            break
        if BLOCKED_MARK in exception_text(current):
            found = current
        try:
            reason = getattr(current, "reason", None)
        except Exception:
            reason = None
        if isinstance(reason, BaseException) and BLOCKED_MARK in exception_text(reason):
            found = reason
        current = current.__cause__ or current.__context__
    return found


def _format_traceback(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except BaseException:  # user __str__/__repr__ code ran in there
        lines = traceback.format_tb(exc.__traceback__)
        return "".join(["Traceback (most recent call last):\n", *lines, exception_line(exc)])


def error_from_exception(
    exc: BaseException, is_user_file: Callable[[str], bool], memory_mb: int
) -> ErrorInfo:
    """The error as the user should see it: one line, at their deepest line that failed."""
    file = line = None
    if isinstance(exc, SyntaxError) and exc.filename and is_user_file(exc.filename):
        file, line = exc.filename, exc.lineno
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if is_user_file(frame.f_code.co_filename):
            file, line = frame.f_code.co_filename, lineno
    tb = _format_traceback(exc)
    blocked = _blocked_cause(exc)
    if blocked is not None:
        return ErrorInfo(exception_line(blocked), file, line, "blocked", tb)
    if isinstance(exc, BuildTimeout):
        return ErrorInfo(f"TimeoutError: {exc}", file, line, "timeout", tb)
    text = exception_text(exc)
    if (placeholder := _unavailable_used(exc, text, is_user_file)) is not None:
        return ErrorInfo(exception_line(placeholder), file, line, "exception", tb)
    if (
        isinstance(exc, MemoryError)
        or "can't allocate memory" in text
        or "DefaultCPUAllocator" in text
    ):
        message = f"MemoryError: building needs more memory than the cap ({memory_mb} MB)"
        return ErrorInfo(message, file, line, "memory", tb)
    return ErrorInfo(exception_line(exc), file, line, "exception", tb)


def _unavailable_used(
    exc: BaseException, text: str, is_user_file: Callable[[str], bool]
) -> UnavailableNameError | None:
    """The placeholder of a failed module statement that C code refused by its type
    (``nn.Linear(N, N)`` with ``N = int(os.environ["N"])`` failed: torch says ``found
    element of type Unavailable``), as the placeholder says it when Python code uses it:
    which statement failed, and why. Found among the names the failing user frames use,
    the deepest first."""
    if Unavailable.__name__ not in text:
        return None
    frames = [f for f, _ in traceback.walk_tb(exc.__traceback__)]
    for frame in reversed(frames):
        if not is_user_file(frame.f_code.co_filename):
            continue
        for name in frame.f_code.co_varnames + frame.f_code.co_names:
            why = why_unavailable(frame.f_locals.get(name, frame.f_globals.get(name)))
            if why is not None:
                return UnavailableNameError(why)
    return None


_MISSING_ARGS = re.compile(
    r"__init__\(\) missing \d+ required (?:positional|keyword-only) arguments?: (.*)"
)


def needs_args(spec: ClassSpec, exc: BaseException, file: str) -> ErrorInfo | None:
    """An all-default guess that the constructor refused: a note, not an exception.

    Discovery cannot see the signatures a class inherits from torch (``class
    LayerNorm(nn.LayerNorm)``) or forwards with ``*args, **kwargs``; Python names them.
    """
    if spec.ctor_source != "default arguments" or not isinstance(exc, TypeError):
        return None
    match = _MISSING_ARGS.search(exception_text(exc))
    if match is None:
        return None
    names = re.findall(r"'(\w+)'", match.group(1))
    example = ", ".join(f"{name}=..." for name in names)
    hint = f'[tool.paramlens.models]\n{spec.name} = "{spec.name}({example})"'
    message = f"{spec.name} needs constructor arguments: {', '.join(names)}"
    return ErrorInfo(message, file, spec.line, "needs-args", hint)
