"""Full garbage collections while the server is idle, not between a keystroke and its lenses.

The server keeps a big workspace's reading (timm: about 1,000 files, their call sites and
constructors, the last parsed trees), so a full collection walks millions of objects. Python
started one by itself every other edit of timm's ``vision_transformer.py``, in the middle of
the work between the edit and the first job: 0.15-0.35 s of the second the user waits. Here
Python makes no full collection by itself; :class:`IdleCollector` makes one once no
analysis has run for a moment, and in any case after every ``most`` analyses (a user who
never stops typing still gets their cycles collected). The young generations are collected
as usual. Imports nothing of paramlens.
"""

from __future__ import annotations

import asyncio
import gc

NEVER = 1 << 30  # a third threshold Python's collector never reaches


class IdleCollector:
    def __init__(self, delay_s: float = 1.0, most: int = 20) -> None:
        self.delay_s, self.most = delay_s, most
        self.busy = 0  # analyses running
        self.since = 0  # analyses started since the last full collection
        self.collections = 0
        self._timer: asyncio.TimerHandle | None = None
        self._thresholds: tuple[int, ...] | None = None  # Python's, once replaced

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
