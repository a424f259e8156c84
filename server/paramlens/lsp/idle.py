"""Full garbage collections while the server is idle, not between a keystroke and its lenses.

The server keeps a big workspace's reading (timm: about 1,000 files, their call sites and
constructors, the last parsed trees), so a full collection walks millions of objects. Python
started one by itself every other edit of timm's ``vision_transformer.py``, in the middle of
the work between the edit and the first job: 0.15-0.35 s of the second the user waits. Here
Python makes no full collection by itself; :class:`IdleCollector` makes one once no
analysis has run for a moment, and in any case after every ``most`` analyses (a user who
never stops typing still gets their cycles collected). The young generations are collected
as usual. After a collection in a pause, the memory it freed goes back to the system
(glibc's ``malloc_trim``): glibc keeps freed blocks, and the server's resident memory grew
with every big file parsed (a soak over timm: 0.2 MB a minute, a heap that Python saw flat).
Imports nothing of paramlens.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import sys
from collections.abc import Callable

NEVER = 1 << 30  # a third threshold Python's collector never reaches


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``: freed memory back to the system. None elsewhere (musl,
    macOS, Windows), where the allocator has no such call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


class IdleCollector:
    def __init__(self, delay_s: float = 1.0, most: int = 20) -> None:
        self.delay_s, self.most = delay_s, most
        self.busy = 0  # analyses running
        self.since = 0  # analyses started since the last full collection
        self.collections = 0
        self._timer: asyncio.TimerHandle | None = None
        self._thresholds: tuple[int, ...] | None = None  # Python's, once replaced
        self._release = malloc_trim()

    def started(self) -> None:
        """An analysis starts: no full collection until it is over, unless ``most`` ran
        since the last one."""
        if self._thresholds is None:  # the first analysis: a server, not an import of one
            self._thresholds = gc.get_threshold()
            first, second, *_ = self._thresholds
            gc.set_threshold(first, second, NEVER)
        self.busy += 1
        self.since += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.since > self.most:
            self.collect()

    def finished(self) -> None:
        """An analysis ended: a full collection once none has run for ``delay_s``."""
        self.busy -= 1
        if not self.busy:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(self.delay_s, self._idle)

    def _idle(self) -> None:
        self._timer = None
        if not self.busy:
            self.collect()
            if self._release is not None:  # a pause: the few ms it takes cost no one
                self._release()

    def collect(self) -> None:
        gc.collect()
        self.since = 0
        self.collections += 1

    def close(self) -> None:
        """Python's own thresholds back."""
        if self._timer is not None:
            self._timer.cancel()
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
