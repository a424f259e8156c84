"""Remember which workspace line created each module and each ``nn.Parameter``.

Runs in the worker (standard library + torch). ``nn.Module.__init__`` and
``nn.Parameter.__new__`` are wrapped; on each call the stack is walked outward
past the instance's own constructor chain, and the workspace frames met on the
way are kept as ``(code, f_lasti)`` pairs, resolved to lines only when asked.
The walk stops at the first workspace frame that is the constructor of another
module (the parent), so a layer built in a helper function gets both the
helper's line and the caller's line.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

Site = tuple[str, int]  # (file, 1-based line)
_MAX_DEPTH = 64


_positions: dict[types.CodeType, list[int | None]] = {}


def _call_line(code: types.CodeType, lasti: int, fallback: int) -> int:
    """The first line of the call expression being executed (3.11+), else the frame's line."""
    if not hasattr(code, "co_positions") or lasti < 0:
        return fallback
    starts = _positions.get(code)
    if starts is None:
        starts = _positions[code] = [p[0] for p in code.co_positions()]
    index = lasti // 2
    return (starts[index] if index < len(starts) else None) or fallback


def _first_argument(frame: types.FrameType) -> Any:
    code = frame.f_code
    if code.co_argcount == 0:
        return None
    return frame.f_locals.get(code.co_varnames[0])


class SiteRecorder:
    def __init__(self, is_user_file: Callable[[str], bool]) -> None:
        self._is_user_file = is_user_file
        self._user_cache: dict[str, bool] = {}
        # id -> (object kept alive so ids stay unique, raw frames)
        self._raw: dict[int, tuple[object, list[tuple[types.CodeType, int, int]]]] = {}
        # the arguments of the first module constructed since :meth:`clear` (the model a
        # constructor expression builds first is the one it returns, as a rule): its
        # ``__init__`` chain's locals when ``nn.Module.__init__`` ran, the built class's last
        self._first_args: tuple[object, dict[str, object]] | None = None

    def _user(self, filename: str) -> bool:
        known = self._user_cache.get(filename)
        if known is None:
            known = self._user_cache[filename] = self._is_user_file(filename)
        return known

    def record(self, obj: object, frame: types.FrameType | None) -> None:
        raw: list[tuple[types.CodeType, int, int]] = []
        depth = 0
        arguments: dict[str, object] | None = {} if self._first_args is None else None
        while frame is not None and depth < _MAX_DEPTH:
            depth += 1
            first = _first_argument(frame)
            if first is obj:  # still inside the object's own constructor chain
                if arguments is not None:
                    arguments.update(frame.f_locals)  # outer (the built class) last
                frame = frame.f_back
                continue
            code = frame.f_code
            if self._user(code.co_filename):
                raw.append((code, frame.f_lasti, frame.f_lineno or 0))
                if code.co_name == "__init__" and isinstance(first, nn.Module):
                    break  # the parent module's constructor owns this object
            frame = frame.f_back
        if raw:
            self._raw[id(obj)] = (obj, raw)
        if arguments is not None and isinstance(obj, nn.Module):
            names = {"self", "__class__", "args", "kwargs"}
            kept = {k: v for k, v in arguments.items() if k not in names}
            self._first_args = (obj, kept)

    def constructor_arguments(self, model: object) -> dict[str, object]:
        """What ``model``'s ``__init__`` was called with (its locals when it reached
        ``nn.Module.__init__``), if it was the first module built since :meth:`clear`."""
        if self._first_args is None or self._first_args[0] is not model:
            return {}
        return self._first_args[1]

    def first_site(self, obj: object) -> Site | None:
        """The first line that made ``obj`` (the one a lens or an error names), if any."""
        sites = self.sites(obj)
        return sites[0] if sites else None

    def sites(self, obj: object) -> list[Site]:
        entry = self._raw.get(id(obj))
        if entry is None or entry[0] is not obj:
            return []
        seen: list[Site] = []
        for code, lasti, lineno in entry[1]:
            site = (code.co_filename, _call_line(code, lasti, lineno))
            if site not in seen:
                seen.append(site)
        return seen

    def clear(self) -> None:
        self._raw.clear()
        self._first_args = None


@contextmanager
def recording(recorder: SiteRecorder) -> Iterator[None]:
    """Wrap the constructors of ``nn.Module`` and ``nn.Parameter`` while building."""
    original_init = nn.Module.__init__
    original_new = nn.Parameter.__dict__["__new__"]  # the staticmethod object itself

    def module_init(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        recorder.record(self, sys._getframe(1))

    def parameter_new(cls: type, *args: Any, **kwargs: Any) -> Any:
        param = original_new.__func__(cls, *args, **kwargs)
        caller = sys._getframe(1)
        if recorder._user(caller.f_code.co_filename):
            recorder.record(param, caller)
        return param

    nn.Module.__init__ = module_init  # type: ignore[method-assign]
    nn.Parameter.__new__ = staticmethod(parameter_new)  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.__init__ = original_init  # type: ignore[method-assign]
        nn.Parameter.__new__ = original_new  # type: ignore[method-assign]
