"""Zygotes: a sandboxed process per workspace package that has imported it once.

Importing a big package (timm, transformers) takes seconds; a cold summary of its
models folder runs a hundred jobs, and each job's child would import it again. A
zygote is forked from the worker, isolates itself like any build child
(:mod:`.sandbox`), imports the package as the loader does (:mod:`.loader`), and
then serves jobs exactly as the worker does (:class:`.serve.Worker`), forking each
job's child from itself, package already imported. The worker routes a job to the
zygote of its package and relays the results.

A zygote is retired when a workspace file it imported changes on disk, and a job
whose unsaved buffers override such a file is built by a fresh child instead. If a
zygote dies, its jobs are built without it. Standard library + torch only.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from . import protocol
from .protocol import BuildJob

IMPORT_BUDGET_S = 60.0
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

    def send(self, message: dict[str, Any]) -> None:
        data = (protocol.dumps(message) + "\n").encode()
        with contextlib.suppress(OSError):  # a dead zygote: its EOF is handled by the worker
            view = memoryview(data)
            while view:
                view = view[os.write(self.to_fd, view) :]

    def can_take(self, job: BuildJob) -> bool:
        """Not while its imports are stale, or shadowed by the job's unsaved buffers."""
        if self.retired:
            return False
        if job.overrides:
            if self.files is None:
                return False
            overridden = {os.path.realpath(p) for p, _ in job.overrides}
            if overridden & set(self.files):
                return False
        if self.files is not None:
            for path, mtime in self.files.items():
                try:
                    if os.stat(path).st_mtime_ns != mtime:
                        self.retired = True
                        return False
                except OSError:
                    self.retired = True
                    return False
        return True

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


def spawn(key: ZygoteKey, job: BuildJob, scratch_root: str, max_children: int) -> Zygote:
    """Fork a zygote for ``key``; it starts importing at once."""
    to_read, to_write = os.pipe()
    from_read, from_write = os.pipe()
    parent = os.getpid()
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
            _zygote_main(job, scratch_root, parent, max_children)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 70
        finally:
            os._exit(code)
    os.close(to_read)
    os.close(from_write)
    return Zygote(key, pid, to_write, from_read)


def imported_files(workspace: str) -> dict[str, int]:
    """The workspace files imported in this process, with their mtimes: when one changes,
    the worker retires the zygote."""
    from .loader import is_workspace_file

    files = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and is_workspace_file(path, workspace):
            with contextlib.suppress(OSError):
                files[os.path.realpath(path)] = os.stat(path).st_mtime_ns
    return files


def import_parents(job: BuildJob) -> None:
    """In a zygote, before forking a job's child: import the job's parent packages
    (``monai.networks.nets`` for ``monai.networks.nets.basic_unet``), once, so that each
    child imports only its own module. Failures are left for the child to report."""
    parent = job.module.rpartition(".")[0]
    if parent and parent not in sys.modules:
        _import_quietly(parent, IMPORT_BUDGET_S)
        _report_imported(job)


def _import_quietly(name: str, budget_s: float) -> None:
    """Import ``name`` within ``budget_s``; its prints go to the log, never into the
    protocol; a failure is logged (the build children import what they need themselves)."""

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"importing {name} took longer than {budget_s:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, budget_s)
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        importlib.import_module(name)
    except BaseException as exc:
        print(f"paramlens zygote: importing {name} failed: {exc!r}", file=sys.stderr)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)


def _report_imported(job: BuildJob) -> None:
    from .serve import emit

    workspace = os.path.normcase(os.path.realpath(job.workspace))
    emit(1, {"type": "zygote-ready", "files": imported_files(workspace)})


def _zygote_main(job: BuildJob, scratch_root: str, parent: int, max_children: int) -> None:
    from . import sandbox
    from .serve import Worker, frozen_when_imported, install_workspace

    scratch = tempfile.mkdtemp(dir=scratch_root)
    # The zygote holds the imported package; each build child caps itself again below this.
    cap_mb = job.memory_mb * 2 + 2048
    _, notes = sandbox.enter(scratch, cap_mb, IMPORT_BUDGET_S * 2, parent)
    for note in notes:
        print(f"paramlens zygote: {note}", file=sys.stderr)
    install_workspace(job, {})
    with frozen_when_imported():  # timm: 1.93 -> 1.74 s, 7 MB more kept
        _import_quietly(job.module.partition(".")[0], IMPORT_BUDGET_S)
    _report_imported(job)
    Worker(True, max_children, scratch_root=scratch, nested=True).run()
