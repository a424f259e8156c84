"""The worker's main loop: a long-lived process in the user's interpreter.

Started by the server (``paramlens.worker_client``), it imports torch once, warms
the meta device, and then serves build jobs read as JSON lines on stdin. Each job
runs in a fresh forked child (cheap: torch is already imported) that isolates
itself (:mod:`.sandbox`), imports the user's file as definitions only
(:mod:`.loader`) and builds each class (:mod:`.build`), streaming one result per
class back through a pipe. The parent enforces a wall-clock deadline per class by
killing the child's process group; classes after a killed one are retried in a
new child, so one hanging constructor costs only its own result.

On platforms without ``fork`` each child is a fresh interpreter instead (slower:
it imports torch again). Standard library + torch only.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import importlib
import json
import linecache
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import BOOTSTRAP, protocol, zygote
from .protocol import BuildJob, ClassSpec, ErrorInfo, JobResult, ModelResult, exception_line

if TYPE_CHECKING:
    from .loader import Failure, ModuleRunner

_GRACE_S = 2.0  # the child's own alarm fires at the timeout; the kill comes after this
HANG_FILE = "hang-traceback.txt"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def emit(fd: int, message: dict[str, Any]) -> None:
    _write_all(fd, (protocol.dumps(message) + "\n").encode())


def _messages(buffer: bytearray, chunk: bytes) -> list[dict[str, Any]]:
    """Append ``chunk`` to ``buffer``; take out and decode every complete JSON line."""
    buffer += chunk
    *lines, rest = buffer.split(b"\n")
    buffer[:] = rest
    return [json.loads(line) for line in lines if line.strip()]


# -- inside the child -----------------------------------------------------------


def run_child(job: BuildJob, out_fd: int, scratch: str, parent: int) -> None:
    """Isolate, import the user's module, build each class; stream results to ``out_fd``."""
    import importlib

    from . import loader, sandbox
    from .build import BuildContext, BuildTimeout, build_class, error_from_exception
    from .tracking import SiteRecorder

    # Our own result pipe only: not the worker's stdin, nor other jobs' pipes.
    sandbox.close_descriptors((0, 1, 2, out_fd))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)  # user prints go to the server's log, never into the protocol
    hang_file = open(os.path.join(scratch, HANG_FILE), "w")  # noqa: SIM115 (lives as long as we do)
    faulthandler.enable(hang_file)  # a crash in C (a C stack overflow): the line, from the dump
    cpu_budget = job.timeout_s * (1 + len(job.classes))  # RLIMIT_CPU: a backstop only
    active, notes = sandbox.enter(scratch, job.memory_mb, cpu_budget, parent)
    emit(out_fd, {"type": "isolation", "active": active, "notes": notes})

    workspace = os.path.normcase(os.path.realpath(job.workspace))

    def is_user_file(filename: str) -> bool:
        return loader.is_workspace_file(filename, workspace) or filename in overrides

    overrides = dict(job.overrides)
    runner = install_workspace(job, overrides)

    building: str | None = None  # None while importing

    def on_alarm(signum: int, frame: object) -> None:
        if building is None:
            step = importing_step(job, runner.importing[-1] if runner.importing else None)
        else:
            step = f"building {building}"
        raise BuildTimeout(f"{step} took longer than {job.timeout_s:g} s; paramlens stopped it")

    signal.signal(signal.SIGALRM, on_alarm)
    faulthandler.dump_traceback_later(job.timeout_s + _GRACE_S / 2, file=hang_file)
    signal.setitimer(signal.ITIMER_REAL, job.timeout_s)
    try:
        module = importlib.import_module(job.module)
    except BaseException as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        error = error_from_exception(exc, is_user_file, job.memory_mb)
        if error.kind == "exception":
            error = replace(error, kind="import")
        for spec in job.classes:
            emit(out_fd, {"type": "model", "result": ModelResult.failed(spec, job.file, error)})
        return
    signal.setitimer(signal.ITIMER_REAL, 0)
    faulthandler.cancel_dump_traceback_later()
    if runner.failures:
        emit(out_fd, {"type": "notes", "notes": [_failure_note(f, job) for f in runner.failures]})

    ctx = BuildContext(
        module.__dict__,
        job.file,
        job.device,
        SiteRecorder(is_user_file),
        is_user_file,
        job.memory_mb,
        None if job.detail else set(),
        job.shapes,
        job.optimizer,
        job.dims,
        job.precision,
        job.line_shapes,
    )
    for spec in job.classes:
        building = spec.name
        emit(out_fd, {"type": "start", "name": spec.name})
        # If the alarm is ignored, the parent kills us; this dump says which line hung.
        faulthandler.dump_traceback_later(job.timeout_s + _GRACE_S / 2, file=hang_file)
        signal.setitimer(signal.ITIMER_REAL, job.timeout_s)
        try:
            result = build_class(spec, ctx)
        except BaseException as exc:  # SystemExit from user code, a late alarm, ...
            result = ModelResult.failed(spec, job.file, ctx.error(exc))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            faulthandler.cancel_dump_traceback_later()
        emit(out_fd, {"type": "model", "result": result})


def install_workspace(job: BuildJob, overrides: dict[str, str]) -> ModuleRunner:
    """Make the job's workspace importable the paramlens way (:mod:`.loader`); the
    :class:`~.loader.ModuleRunner` that runs its modules, and keeps what failed."""
    import torch

    from . import loader

    workspace = os.path.normcase(os.path.realpath(job.workspace))
    # Module-level statements run on the meta device: `model = Net()` allocates no weights.
    runner = loader.ModuleRunner(lambda: torch.device("meta"))
    loader.install(job.sys_path, workspace, overrides, runner)
    sys.argv = [job.file]  # `parser.parse_args()` at import time sees no worker flags
    return runner


def importing_step(job: BuildJob, inner: str | None = None) -> str:
    """``importing models/big.py`` (``(in models/slow.py, which it imports)``): a step of a
    job that timed out before any class was built, named by workspace-relative paths."""
    step = f"importing {_relative(job.file, job.workspace)}"
    if inner is not None and os.path.realpath(inner) != os.path.realpath(job.file):
        step += f" (in {_relative(inner, job.workspace)}, which it imports)"
    return step


def _relative(path: str, workspace: str) -> str:
    try:
        relative = os.path.relpath(os.path.realpath(path), os.path.realpath(workspace))
    except ValueError:  # another drive
        return path
    return path if relative.startswith(os.pardir) else relative


def _failure_note(failure: Failure, job: BuildJob) -> str:
    where = _relative(failure.file, job.workspace)
    return f"{where}:{failure.line}: skipped while {importing_step(job)} ({failure.message})"


def _child_main(job: BuildJob, out_fd: int, scratch: str, parent: int) -> None:
    code = 0
    try:
        run_child(job, out_fd, scratch, parent)
    except BaseException:
        with contextlib.suppress(BaseException):  # even an exception whose __str__ raises
            traceback.print_exc()
        code = 70
    finally:
        from .sandbox import exit_now

        exit_now(code)


# -- the parent -----------------------------------------------------------------


@dataclass
class _Running:
    job_id: int
    job: BuildJob
    pending: list[ClassSpec]  # not yet finished, in order
    pid: int
    fd: int
    scratch: str
    started: float
    deadline: float
    proc: subprocess.Popen[bytes] | None = None
    buffer: bytearray = field(default_factory=bytearray)
    results: dict[str, ModelResult] = field(default_factory=dict)
    current: str | None = None
    timed_out: bool = False
    cancelled: bool = False
    isolation: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    invalid: str = ""  # what was wrong with what the child sent; it was killed for it
    answered: bool = False  # its result is sent (once every class had one)


_MAX_PENDING_BYTES = 1 << 28  # a child that writes this much without a newline is broken


def _worker_dir() -> str:
    return os.path.dirname(os.path.abspath(__file__))


class Worker:
    def __init__(
        self,
        use_fork: bool,
        max_children: int,
        scratch_root: str | None = None,
        nested: bool = False,
    ) -> None:
        self.use_fork = use_fork
        self.max_children = max_children
        self.selector = selectors.DefaultSelector()
        self.queue: list[tuple[int, BuildJob]] = []
        self.running: dict[int, _Running] = {}  # by fd
        self.stdin_buffer = bytearray()
        self.done = False
        self.scratch_root = tempfile.mkdtemp(prefix="paramlens-", dir=scratch_root)
        # A zygote runs a nested Worker: its jobs fork from it, never from another zygote.
        self.use_zygotes = use_fork and not nested and os.environ.get("PARAMLENS_NO_ZYGOTE") != "1"
        self.nested = nested
        self.zygotes: dict[int, zygote.Zygote] = {}  # by the fd we read from
        self.direct: set[int] = set()  # jobs a dead zygote left: built without one

    # stdout is the protocol channel of the parent
    def send(self, message: dict[str, Any]) -> None:
        emit(1, message)

    def run(self) -> None:
        os.set_blocking(0, False)
        self.selector.register(0, selectors.EVENT_READ, None)
        try:
            while not self.done or self.running or self._zygote_jobs():
                self._dispatch()
                self.selector_step()
        finally:
            for running in list(self.running.values()):
                self._kill(running)
            for z in self.zygotes.values():
                z.kill()
            shutil.rmtree(self.scratch_root, ignore_errors=True)

    def _zygote_jobs(self) -> int:
        return sum(len(z.jobs) for z in self.zygotes.values())

    def selector_step(self) -> None:
        now = time.monotonic()
        wait = min((r.deadline - now for r in self.running.values()), default=None)
        events = self.selector.select(None if wait is None else max(wait, 0.0))
        for key, _ in events:
            if key.fd == 0:
                self._read_stdin()
            elif key.fd in self.zygotes:
                self._read_zygote(self.zygotes[key.fd])
            else:
                self._read_child(self.running[key.fd])
        now = time.monotonic()
        for running in list(self.running.values()):
            if now >= running.deadline and not running.timed_out:
                running.timed_out = True
                self._kill(running)

    def _read_stdin(self) -> None:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            self.done = True
            self.selector.unregister(0)
            if not self.nested:
                # The server or CLI is gone (a zygote's stdin closes when it is retired,
                # and it finishes what it has): nobody will read these results.
                self._handle({"type": "shutdown"})
            return
        for message in _messages(self.stdin_buffer, chunk):
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "build":
            self.queue.append((int(message["id"]), protocol.build_job(message["job"])))
        elif kind == "cancel":
            job_id = int(message["id"])
            self.queue = [(i, j) for i, j in self.queue if i != job_id]
            for running in list(self.running.values()):
                if running.job_id == job_id:
                    running.cancelled = True  # answered, and not rebuilt, when reaped
                    self._kill(running)
            for z in self.zygotes.values():
                if job_id in z.jobs:
                    z.send(message)
        elif kind == "prepare":  # jobs of this module are coming: import its package now
            job = protocol.build_job(message["job"])
            if self.nested:
                zygote.import_parents(job)
            elif (ready := self._zygote_for(job)) is not None:
                ready.send(message)
        elif kind == "shutdown":
            self.done = True
            self.queue.clear()
            for running in list(self.running.values()):
                self._kill(running)
            for z in list(self.zygotes.values()):
                self._zygote_ended(z, answer=False)

    def _dispatch(self) -> None:
        while self.queue and not self.done:
            job_id, job = self.queue[0]
            z = self._zygote_for(job) if job_id not in self.direct else None
            if z is not None:
                self.queue.pop(0)
                z.jobs[job_id] = job
                z.last_used = time.monotonic()
                z.send({"type": "build", "id": job_id, "job": job})
            elif len(self.running) < self.max_children:
                self.queue.pop(0)
                if self.nested:  # a zygote: siblings in the same subpackage import it once
                    zygote.import_parents(job)
                self._start(job_id, job, list(job.classes), {})
            else:
                break

    # -- zygotes: jobs of a workspace package fork from a process that imported it once

    def _zygote_for(self, job: BuildJob) -> zygote.Zygote | None:
        key = zygote.zygote_key(job) if self.use_zygotes else None
        if key is None:
            return None
        for z in self.zygotes.values():
            if z.key == key and not z.retired:
                if z.can_take(job):
                    return z
                if z.retired:
                    z.retire()  # a file it imported changed: a fresh one below
                    break
                return None  # the job's unsaved buffers shadow what it imported
        live = [z for z in self.zygotes.values() if not z.retired]
        if len(live) >= zygote.MAX_ZYGOTES:
            idle = sorted((z for z in live if not z.jobs), key=lambda z: z.last_used)
            if not idle:
                return None
            idle[0].retire()
        z = zygote.spawn(key, job, self.scratch_root, self.max_children)
        self.zygotes[z.from_fd] = z
        self.selector.register(z.from_fd, selectors.EVENT_READ, None)
        return z

    def _read_zygote(self, z: zygote.Zygote) -> None:
        try:
            chunk = os.read(z.from_fd, 1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            self._zygote_ended(z, answer=True)
            return
        try:  # a zygote ran the package's import: what it sends is checked like a child's
            for message in _messages(z.buffer, chunk):
                self._zygote_message(z, message)
        except Exception as exc:
            print(
                f"paramlens: a zygote sent invalid data ({exception_line(exc, 200)})",
                file=sys.stderr,
            )
            self._zygote_ended(z, answer=True)  # its jobs are built without it

    def _zygote_message(self, z: zygote.Zygote, message: Any) -> None:
        kind = message["type"]
        if kind == "zygote-ready":
            z.files = {str(p): int(m) for p, m in message["files"].items()}
            return
        job_id = message["id"]
        job = z.jobs[job_id]  # KeyError: not one of its jobs
        if kind == "building":
            name = message["name"]
            if name not in {spec.name for spec in job.classes}:
                raise ValueError(f"building {name!r}, which its job did not ask for")
            self.send({"type": "building", "id": job_id, "name": name})
        elif kind == "cancelled":
            del z.jobs[job_id]
            self.send({"type": "cancelled", "id": job_id})
        elif kind == "result":
            result = protocol.job_result(message["result"])
            protocol.check_types(result)
            asked = {spec.name for spec in job.classes}
            for model in result.models:
                if model.name not in asked or model.file != job.file:
                    raise ValueError(f"a result for {model.name}, which its job did not ask for")
            del z.jobs[job_id]  # a job it got wrong is rebuilt without it
            self.send({"type": "result", "id": job_id, "result": result})
        else:
            raise ValueError(f"unknown message type {kind!r}")

    def _zygote_ended(self, z: zygote.Zygote, answer: bool) -> None:
        """Its jobs in flight are built without a zygote (or dropped at shutdown)."""
        self.selector.unregister(z.from_fd)
        os.close(z.from_fd)
        if z.to_fd >= 0:
            os.close(z.to_fd)
        del self.zygotes[z.from_fd]
        z.kill()
        with contextlib.suppress(OSError):
            os.waitpid(z.pid, 0)
        if answer and not self.done:
            for job_id, job in z.jobs.items():
                self.direct.add(job_id)
                self.queue.insert(0, (job_id, job))

    def _start(
        self, job_id: int, job: BuildJob, pending: list[ClassSpec], results: dict[str, ModelResult]
    ) -> None:
        scratch = tempfile.mkdtemp(dir=self.scratch_root)
        child = replace(job, classes=tuple(pending))
        read_fd, write_fd = os.pipe()
        proc = None
        parent = os.getpid()
        if self.use_fork:
            from .sandbox import worker_fork

            with worker_fork():
                pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                _child_main(child, write_fd, scratch, parent)
        else:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    BOOTSTRAP,
                    _worker_dir(),
                    "--child",
                    str(write_fd),
                    scratch,
                    str(parent),
                ],
                stdin=subprocess.PIPE,
                stdout=sys.stderr,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
            assert proc.stdin is not None
            proc.stdin.write(protocol.dumps(child).encode())
            proc.stdin.close()
            pid = proc.pid
        os.close(write_fd)
        now = time.monotonic()
        running = _Running(
            job_id, job, pending, pid, read_fd, scratch, now, now + self._allowance(job), proc
        )
        running.results = results
        self.running[read_fd] = running
        self.selector.register(read_fd, selectors.EVENT_READ, None)

    def _allowance(self, job: BuildJob) -> float:
        # a fresh interpreter must import torch first
        return job.timeout_s + _GRACE_S + (0 if self.use_fork else 30)

    def _read_child(self, running: _Running) -> None:
        chunk = os.read(running.fd, 1 << 20)
        if not chunk:
            self._reap(running)
            return
        if running.invalid:
            return  # killed: drain until EOF
        running.buffer += chunk
        *lines, rest = running.buffer.split(b"\n")
        running.buffer[:] = rest
        try:
            if len(rest) > _MAX_PENDING_BYTES:
                raise ValueError(f"more than {_MAX_PENDING_BYTES} bytes without a line end")
            for line in lines:
                if line.strip():
                    self._child_message(running, json.loads(line))
        except Exception as exc:  # the child runs user code: what it sends is untrusted
            running.invalid = exception_line(exc, 200)
            self._kill(running)

    def _child_message(self, running: _Running, message: Any) -> None:
        """Take in one message of the child; raise on anything malformed or forged."""
        kind = message["type"]
        if kind == "isolation":
            running.isolation = _strings(message["active"])
            running.notes = _strings(message["notes"])
        elif kind == "notes":
            running.notes += _strings(message["notes"])
        elif kind == "start":
            running.current = self._pending_spec(running, message["name"]).name
            running.deadline = time.monotonic() + running.job.timeout_s + _GRACE_S
            # the server names this class if the worker dies meanwhile (the OOM killer)
            self.send({"type": "building", "id": running.job_id, "name": running.current})
        elif kind == "model":
            result = protocol.model_result(message["result"])
            protocol.check_types(result)
            spec = self._pending_spec(running, result.name)
            if running.current not in (None, spec.name):
                raise ValueError(f"a result for {spec.name} while building {running.current}")
            if result.file != running.job.file:
                raise ValueError(f"a result for {spec.name} in another file ({result.file})")
            running.results[spec.name] = replace(result, line=spec.line, kind=spec.kind)
            running.pending = [c for c in running.pending if c.name != spec.name]
            running.current = None
            if not running.pending:  # answer now: the child's exit (its PID and network
                self._finish(running)  # namespaces torn down) takes another 130 ms
        else:
            raise ValueError(f"unknown message type {kind!r}")

    def _pending_spec(self, running: _Running, name: object) -> ClassSpec:
        for spec in running.pending:
            if spec.name == name and name not in running.results:
                return spec
        raise ValueError(f"a result for {name!r}, which this job did not ask for (or yet)")

    def _reap(self, running: _Running) -> None:
        self.selector.unregister(running.fd)
        os.close(running.fd)
        del self.running[running.fd]
        status = self._wait(running)
        if running.invalid and not running.cancelled:
            error = ErrorInfo(
                f"the build process sent invalid data ({running.invalid}); "
                "paramlens stopped it and did not build the rest of this file",
                running.job.file,
                (self._spec(running) if running.current else running.pending[0]).line
                if running.pending
                else None,
                "crash",
            )
            for spec in running.pending:
                running.results[spec.name] = ModelResult.failed(spec, running.job.file, error)
            running.pending = []
        elif running.pending and not running.cancelled:
            self._record_failure(running, status)  # reads the hang dump: before the cleanup
        shutil.rmtree(running.scratch, ignore_errors=True)
        if running.answered:
            return
        if running.cancelled:
            self.direct.discard(running.job_id)
            self.send({"type": "cancelled", "id": running.job_id})
            return
        rest = [c for c in running.pending if c.name not in running.results]
        if rest and not self.done:  # the classes after a killed or crashed one
            self._start(running.job_id, running.job, rest, running.results)
            return
        self._finish(running)

    def _record_failure(self, running: _Running, status: str) -> None:
        """The class the child died on gets the error (all pending ones if it died importing)."""
        failed_on = running.pending[0] if running.current is None else self._spec(running)
        if running.timed_out:
            hung = _hung_line(running)
            file, line = hung or (running.job.file, failed_on.line)
            if running.current is None:  # it never got past the import
                step = importing_step(running.job, hung[0] if hung else None)
            else:
                step = f"building {failed_on.name}"
            error = ErrorInfo(
                f"TimeoutError: {step} took longer than "
                f"{running.job.timeout_s:g} s; paramlens stopped it",
                file,
                line,
                "timeout",
            )
        else:
            message = f"the build process ended unexpectedly ({status})"
            file, line = _hung_line(running) or (running.job.file, failed_on.line)
            error = ErrorInfo(message, file, line, "crash")
        stuck = [failed_on] if running.current is not None else running.pending
        for spec in stuck:
            running.results[spec.name] = ModelResult.failed(spec, running.job.file, error)

    def _spec(self, running: _Running) -> ClassSpec:
        return next(c for c in running.pending if c.name == running.current)

    def _wait(self, running: _Running) -> str:
        if running.proc is not None:
            code = running.proc.wait()
            return f"exit code {code}"
        _, status = os.waitpid(running.pid, 0)
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            return f"killed by {name}{_SIGNAL_HINTS.get(name, '')}"
        return f"exit code {os.WEXITSTATUS(status)}"

    def _kill(self, running: _Running) -> None:
        """Kill the child's whole process group (it called setsid), or at least the child."""
        if running.proc is not None and not hasattr(os, "killpg"):
            running.proc.kill()
            return
        try:
            os.killpg(running.pid, signal.SIGKILL)
        except OSError:
            with contextlib.suppress(OSError):
                os.kill(running.pid, signal.SIGKILL)

    def _finish(self, running: _Running) -> None:
        running.answered = True
        self.direct.discard(running.job_id)
        models = tuple(
            running.results[c.name] for c in running.job.classes if c.name in running.results
        )
        result = JobResult(
            models,
            isolation=running.isolation,
            notes=running.notes,
            elapsed_ms=round((time.monotonic() - running.started) * 1000, 2),
        )
        self.send({"type": "result", "id": running.job_id, "result": result})


_SIGNAL_HINTS = {
    "SIGSEGV": ": a crash in C code, or a C stack overflow from deep recursion",
    "SIGKILL": ": out of memory, or killed by another process",
    "SIGABRT": ": C code aborted",
}


def _strings(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError("expected a list of strings")
    return tuple(values)


def _hung_line(running: _Running) -> tuple[str, int] | None:
    """The workspace line a killed child was stuck on, from its faulthandler dump."""
    from .loader import is_workspace_file

    try:
        with open(os.path.join(running.scratch, HANG_FILE), encoding="utf-8") as f:
            dump = f.read()
    except OSError:
        return None
    workspace = os.path.normcase(os.path.realpath(running.job.workspace))
    frames = [
        (file, int(line))
        for file, line in re.findall(r'File "([^"]+)", line (\d+)', dump)  # innermost first
        if is_workspace_file(file, workspace)
    ]
    # A frame caught on its function's header had not begun its body: the crash (a C stack
    # overflow, most often) came from the call, so its caller's line is the user's line.
    while len(frames) > 1 and _is_header(*frames[0]):
        del frames[0]
    return frames[0] if frames else None


def _is_header(file: str, line: int) -> bool:
    text = linecache.getline(file, line).lstrip()
    return text.startswith(("def ", "async def ", "@"))


class _DeferredDynamo(types.ModuleType):
    """``torch._dynamo`` until something really uses it.

    torch's meta decompositions are wrapped in ``torch._disable_dynamo``, which imports
    torch._dynamo (over a second here) the first time one runs, only to wrap the function
    so that torch.compile does not trace it. Nothing compiles in the worker: until code
    asks for anything else, ``disable`` returns the function as it is, and the first other
    attribute (``config``, ``__path__`` for a submodule, ``is_compiling``...) imports the
    real module, which takes this one's place.
    """

    def disable(
        self, fn: Any = None, recursive: bool = True, wrapping: bool = True, **kwargs: Any
    ) -> Any:
        return fn if fn is not None else (lambda f: f)

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def _defer_dynamo() -> None:
    if "torch._dynamo" not in sys.modules:
        sys.modules["torch._dynamo"] = _DeferredDynamo("torch._dynamo")


@contextlib.contextmanager
def frozen_when_imported() -> Iterator[None]:
    """No garbage collection while big packages import (torch, a zygote's package), then
    what they made frozen out of the collector's sight, as gc.freeze's documentation
    advises a parent that forks: collections walked torch's objects again and again while
    they were made (0.14 s of a 1.4 s start), and later in every child (reading an XL
    result took 120 ms, not 30)."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _warm_meta() -> None:
    """Build a few layers on meta once: the first meta build imports ~800 modules."""
    import torch
    from torch import nn

    with torch.device("meta"):
        layers = nn.Sequential(
            nn.Linear(4, 4),
            nn.Conv2d(1, 2, 3),
            nn.BatchNorm2d(2),
            nn.LayerNorm(4),
            nn.Embedding(4, 4),
            nn.MultiheadAttention(4, 2),
            nn.LSTM(4, 4),
            nn.TransformerEncoderLayer(4, 2, 8),
        )
        sum(p.numel() for p in layers.parameters())
    from . import build, loader, sandbox, tracking  # noqa: F401  (import once, before forking)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault(
        "OMP_NUM_THREADS", "1"
    )  # before torch: forked children can hang in OpenMP
    if argv[:1] == ["--child"]:
        job = protocol.build_job(json.loads(sys.stdin.read()))
        os.environ["PARAMLENS_CHILD"] = "1"
        _child_main(job, int(argv[1]), argv[2], int(argv[3]))
    started = time.perf_counter()
    with frozen_when_imported():
        try:
            import torch
        except ImportError as exc:
            message = f"cannot import torch in {sys.executable}: {exc}"
            emit(1, {"type": "fatal", "message": message})
            sys.exit(3)
        torch.set_num_threads(1)
        _defer_dynamo()
        _warm_meta()
    use_fork = hasattr(os, "fork") and os.environ.get("PARAMLENS_NO_FORK") != "1"
    info = protocol.WorkerInfo(
        python=sys.executable,
        python_version=sys.version.split()[0],
        torch_version=str(torch.__version__),
        pid=os.getpid(),
        fork=use_fork,
        notes=() if use_fork else ("no fork: each job starts a fresh interpreter",),
        startup_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    emit(1, {"type": "ready", "info": info})
    max_children = max(1, min(4, os.cpu_count() or 1))
    Worker(use_fork, max_children).run()
    # Skip the interpreter's teardown: with torch loaded it takes most of a second, and the
    # server (or the CLI) is waiting for us. Everything we own is already cleaned up.
    os._exit(0)
