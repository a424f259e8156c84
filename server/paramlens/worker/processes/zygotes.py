"""The worker's handles on its zygotes: which zygote a job can use, and starting one.

A zygote (:mod:`.zygote`) is a sandboxed process per workspace package that has
imported it once; the worker (:mod:`.scheduler`) routes a job to the zygote of its
package and relays the results. A workspace file it imported that changes on disk, or
that a job's unsaved buffers override, is run again by the zygote (:mod:`..reload`); when
that cannot be exact, the zygote declines the job: the worker builds it in a fresh child,
and retires the zygote if its own imports are stale. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..protocol import BuildJob
from ..sandbox import exit_now, worker_fork
from ..wire import emit

MAX_ZYGOTES = 4


ZygoteKey = tuple[str, tuple[str, ...], str, int]  # workspace, sys.path, package, memory


def zygote_key(job: BuildJob) -> ZygoteKey | None:
    """The zygote a job can use: jobs of modules inside a workspace package."""
    package, dot, _ = job.module.partition(".")
    if not dot or job.device != "meta":
        return None
    return job.workspace, job.sys_path, package, job.memory_mb


@dataclass
class Zygote:
    """The worker's handle on one zygote."""

    key: ZygoteKey
    pid: int
    to_fd: int  # the zygote's stdin: build, cancel
    from_fd: int  # its stdout: ready, result, cancelled
    buffer: bytearray = field(default_factory=bytearray)
    files: dict[str, int] | None = None  # workspace files it imported -> mtime_ns, once ready
    jobs: dict[int, BuildJob] = field(default_factory=dict)  # in flight
    retired: bool = False
    last_used: float = field(default_factory=time.monotonic)
    # a prepared process (:func:`.zygote.prepare_main`): the unsaved texts it ran, and the
    # generation of its zygote's imports it was forked at
    prepared_for: tuple[tuple[str, str], ...] | None = None
    generation: int = 0
    ready_by: float = 0.0  # killed if not ready by then (monotonic), its jobs built without it
    heard: float = field(default_factory=time.monotonic)  # its last word, or its first job's

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # a dead zygote: its EOF is handled by the worker
            emit(self.to_fd, message)

    def can_take(self, job: BuildJob) -> bool:
        """Unless retired. A file it imported that changed on disk, or that the job's
        unsaved buffers shadow, is its own business: it runs that module again, or
        declines the job (:func:`.zygote.bring_up_to_date`, :func:`.zygote.edit_plan`)."""
        return not self.retired

    def retire(self) -> None:
        """No new jobs; it finishes those in flight and exits when its stdin closes."""
        self.retired = True
        with contextlib.suppress(OSError):
            os.close(self.to_fd)
        self.to_fd = -1

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)


def spawn(key: ZygoteKey, body: Callable[[], None]) -> Zygote:
    """Fork a zygote for ``key`` that runs ``body`` (:func:`.zygote.main`, which starts
    importing at once; or, forked from a zygote, :func:`.zygote.prepare_main`) with the
    pipes as its stdin and stdout."""
    to_read, to_write = os.pipe()
    from_read, from_write = os.pipe()
    with worker_fork():  # a zygote's audit hook lets its own loop fork
        pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(to_write)
            os.close(from_read)
            os.dup2(to_read, 0)
            os.dup2(from_write, 1)
            os.close(to_read)
            os.close(from_write)
            body()
        except BaseException:
            traceback.print_exc()
            code = 70
        finally:
            exit_now(code)  # the real os._exit: a zygote's sandbox replaced it
    os.close(to_read)
    os.close(from_write)
    return Zygote(key, pid, to_write, from_read)
