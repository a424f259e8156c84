"""The job loop: jobs read as JSON lines on stdin, each built in a child process.

The worker runs it (:mod:`.serve`), and so does each zygote, nested. Each job runs in a
fresh forked child (:mod:`.child`; cheap: torch is already imported); jobs of a
workspace package go to its zygote (:mod:`.zygotes`). The loop enforces a wall-clock
deadline per class by killing the child's process group; classes after a killed one are
retried in a new child, so one hanging constructor costs only its own result. A zygote
that stays silent with jobs past its own deadline is killed too, and its jobs are built
without it. What a child sends is untrusted (it ran user code): it is checked before it
is relayed.

On platforms without ``fork`` each child is a fresh interpreter instead (slower: it
imports torch again). Standard library only (torch is imported by the processes).
"""

from __future__ import annotations

import contextlib
import functools
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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from .. import BOOTSTRAP, protocol
from ..loader import is_workspace_file
from ..protocol import BuildJob, ClassSpec, ErrorInfo, JobResult, ModelResult, exception_line
from ..sandbox import worker_fork
from ..wire import emit, read_messages
from . import child, scratch, zygote, zygotes
from .child import GRACE_S, HANG_FILE, importing_step


@dataclass
class Running:
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
    # as sent on (in a zygote, as the child sent them: :meth:`Worker._checked_model`)
    results: dict[str, ModelResult | dict[str, Any]] = field(default_factory=dict)
    current: str | None = None
    timed_out: bool = False
    cancelled: bool = False
    isolation: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    invalid: str = ""  # what was wrong with what the child sent; it was killed for it
    answered: bool = False  # its result is sent (once every class had one)
    refresh: child.Refresh | None = None  # edited modules its child runs again (a zygote's)
    declined: str = ""  # why its child could not build it from this zygote


_MAX_PENDING_BYTES = 1 << 28  # a child that writes this much without a newline is broken


def _worker_dir() -> str:
    """The worker package's folder: what ``BOOTSTRAP`` loads in a fresh interpreter."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def serve_nested(max_children: int, scratch: str) -> None:
    """The job loop of a zygote (:func:`.zygote.main`): its jobs fork from it."""
    Worker(True, max_children, scratch_root=scratch, nested=True).run()


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
        self.running: dict[int, Running] = {}  # by fd
        self.stdin_buffer = bytearray()
        self.done = False
        if nested:  # inside its worker's folder, which the worker removes
            self.scratch_root, self.scratch_lock = tempfile.mkdtemp(dir=scratch_root), None
        else:
            self.scratch_root, self.scratch_lock = scratch.make(scratch_root)
        # A zygote runs a nested Worker: its jobs fork from it, never from another zygote.
        self.use_zygotes = use_fork and not nested and os.environ.get("PARAMLENS_NO_ZYGOTE") != "1"
        self.nested = nested
        self.zygotes: dict[int, zygotes.Zygote] = {}  # by the fd we read from
        self.direct: set[int] = set()  # jobs a dead zygote left: built without one
        self.stuck: set[zygotes.ZygoteKey] = set()  # packages whose zygote got stuck: none again
        # a zygote's process prepared for an edit's text (:func:`.zygote.prepare_main`)
        self.prepared: zygotes.Zygote | None = None

    # stdout is the protocol channel of the parent
    def send(self, message: dict[str, Any]) -> None:
        emit(1, message)

    def run(self) -> None:
        os.set_blocking(0, False)
        self.selector.register(0, selectors.EVENT_READ, None)
        try:
            while not self.done or self.running or self._zygote_jobs():
                self._dispatch()
                if self.nested and not self.queue and not self.running and zygote.import_ahead():
                    continue  # a zygote with nothing to do imported an opened file's module
                self.selector_step()
        finally:
            for running in list(self.running.values()):
                self._kill(running)
            for z in self.zygotes.values():
                z.kill()
            shutil.rmtree(self.scratch_root, ignore_errors=True)
            if self.scratch_lock is not None:
                os.close(self.scratch_lock)

    def _zygote_jobs(self) -> int:
        return sum(len(z.jobs) for z in self.zygotes.values())

    def selector_step(self) -> None:
        now = time.monotonic()
        deadlines = [r.deadline for r in self.running.values()]
        if self.prepared is not None and self.prepared.files is None:
            deadlines.append(self.prepared.ready_by)
        deadlines += [self._zygote_deadline(z) for z in self.zygotes.values() if z.jobs]
        wait = min((d - now for d in deadlines), default=None)
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
        for z in list(self.zygotes.values()):
            if z.jobs and now >= self._zygote_deadline(z):
                self._zygote_stuck(z, now)
        prepared = self.prepared
        if prepared is not None and prepared.files is None and now >= prepared.ready_by:
            # stuck running the edit's modules (its alarm ignored): its jobs take the usual
            # way, where their child's deadline stops them and says where
            self._zygote_ended(prepared, answer=True)

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
        for message in read_messages(self.stdin_buffer, chunk):
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "build":
            self.queue.append((int(message["id"]), protocol.build_job(message["job"])))
        elif kind == "cancel":
            job_id = int(message["id"])
            if any(i == job_id for i, _ in self.queue):  # never started: said at once
                self.queue = [(i, j) for i, j in self.queue if i != job_id]
                self.direct.discard(job_id)
                self.send({"type": "cancelled", "id": job_id})
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
        elif kind == "prepare-edit":  # an edit's text: its jobs follow after the debounce
            job = protocol.build_job(message["job"])
            if self.nested:
                self._prepare_edit(job)
            elif (taker := self._zygote_running(job)) is not None:
                taker.send(message)
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
                self._send_to(z, job_id, job)
            elif self.nested and (
                self.prepared is not None or len(self.running) < self.max_children
            ):
                self.queue.pop(0)
                todo = zygote.before_fork(job)
                if isinstance(todo, zygote.Decline):
                    self._decline(job_id, todo.reason, todo.retire)
                    continue
                prepared = self._prepared_for(job) if job_id not in self.direct else None
                if prepared is not None:  # its module ran already, in the prepared process
                    print(
                        f"paramlens zygote: a job of {job.module} forks from the process "
                        "prepared for its text",
                        file=sys.stderr,
                    )
                    self._send_to(prepared, job_id, job)
                elif len(self.running) < self.max_children:
                    self._start(job_id, job, list(job.classes), {}, todo)
                    zygote.import_later(job)
                else:
                    self.queue.insert(0, (job_id, job))
                    break
            elif not self.nested and len(self.running) < self.max_children:
                self.queue.pop(0)
                self._start(job_id, job, list(job.classes), {})
            else:
                break

    def _send_to(self, z: zygotes.Zygote, job_id: int, job: BuildJob) -> None:
        if not z.jobs:  # the time it had nothing to do is not silence
            z.heard = time.monotonic()
        z.jobs[job_id] = job
        z.last_used = time.monotonic()
        z.send({"type": "build", "id": job_id, "job": job})

    def _decline(self, job_id: int, reason: str, retire: bool) -> None:
        """A zygote's: this job is built without it (and it is retired, if ``retire``)."""
        self.send({"type": "declined", "id": job_id, "reason": reason, "retire": retire})

    # -- zygotes: jobs of a workspace package fork from a process that imported it once

    def _zygote_deadline(self, z: zygotes.Zygote) -> float:
        """When a zygote with jobs that has said nothing is stuck: its import, or running
        an edited module again, then a prepare's import, each have
        :data:`.zygote.IMPORT_BUDGET_S`; then each class starts in a child of it, which it
        kills at the class's timeout, and says so. (The server's own bound on a silent
        worker, :data:`..engine.worker_client.SILENCE_MARGIN_S`, is longer.)"""
        longest = max(job.timeout_s for job in z.jobs.values())
        return z.heard + 2 * zygote.IMPORT_BUDGET_S + longest + GRACE_S

    def _zygote_stuck(self, z: zygotes.Zygote, now: float) -> None:
        """A zygote silent past its deadline (the package's import blocked its alarm, or
        hangs in C code): killed, its jobs built without it, where each child's deadline
        stops the import and says where; its package gets no zygote again."""
        print(
            f"paramlens: the zygote of {z.key[2]} said nothing for {now - z.heard:.0f} s "
            f"with {len(z.jobs)} job(s): stopped, its package's jobs are built without one",
            file=sys.stderr,
        )
        self.stuck.add(z.key)
        self._zygote_ended(z, answer=True)

    def _zygote_for(self, job: BuildJob) -> zygotes.Zygote | None:
        key = zygotes.zygote_key(job) if self.use_zygotes else None
        if key is None or key in self.stuck:
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
        if len(live) >= zygotes.MAX_ZYGOTES:
            idle = sorted((z for z in live if not z.jobs), key=lambda z: z.last_used)
            if not idle:
                return None
            idle[0].retire()
        serve = functools.partial(serve_nested, self.max_children)
        body = functools.partial(zygote.main, job, self.scratch_root, os.getpid(), serve)
        z = zygotes.spawn(key, body)
        self.zygotes[z.from_fd] = z
        self.selector.register(z.from_fd, selectors.EVENT_READ, None)
        return z

    def _zygote_running(self, job: BuildJob) -> zygotes.Zygote | None:
        """The zygote that would take ``job``, if one runs (none is started for it)."""
        key = zygotes.zygote_key(job) if self.use_zygotes else None
        return next((z for z in self.zygotes.values() if z.key == key and not z.retired), None)

    # -- a zygote's prepared process: an edit's modules run again during the debounce

    def _prepare_edit(self, job: BuildJob) -> None:
        """In a zygote: fork a process that runs the modules of an edit's text again now
        (:func:`.zygote.prepare_main`); the jobs of that text fork their children from it.
        One at a time: a newer text replaces it (killed, or retired if it has jobs)."""
        key = zygotes.zygote_key(job)
        if key is None or (self.prepared and self.prepared.prepared_for == job.overrides):
            return
        self._drop_prepared()
        todo = zygote.before_fork(job)
        if not isinstance(todo, child.Refresh):  # nothing to run again, or not exactly
            return
        serve = functools.partial(serve_nested, self.max_children, self.scratch_root)
        z = zygotes.spawn(key, functools.partial(zygote.prepare_main, job, todo, serve))
        z.prepared_for, z.generation = job.overrides, zygote.generation()
        z.ready_by = time.monotonic() + job.timeout_s + GRACE_S
        self.zygotes[z.from_fd] = z
        self.selector.register(z.from_fd, selectors.EVENT_READ, None)
        self.prepared = z

    def _prepared_for(self, job: BuildJob) -> zygotes.Zygote | None:
        """The prepared process, if it ran exactly ``job``'s texts and this zygote's imports
        are as they were when it was forked (else it is behind them: dropped)."""
        z = self.prepared
        if z is not None and z.generation != zygote.generation():
            self._drop_prepared()
            return None
        return z if z is not None and z.prepared_for == job.overrides else None

    def _drop_prepared(self) -> None:
        z, self.prepared = self.prepared, None
        if z is not None and z.jobs:
            z.retire()  # it finishes them (the server cancels what a newer edit made stale)
        elif z is not None:
            self._zygote_ended(z, answer=False)

    def _read_zygote(self, z: zygotes.Zygote) -> None:
        try:
            chunk = os.read(z.from_fd, 1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            self._zygote_ended(z, answer=True)
            return
        z.heard = time.monotonic()
        try:  # a zygote ran the package's import: what it sends is checked like a child's
            for message in read_messages(z.buffer, chunk):
                self._zygote_message(z, message)
        except Exception as exc:
            print(
                f"paramlens: a zygote sent invalid data ({exception_line(exc, 200)})",
                file=sys.stderr,
            )
            self._zygote_ended(z, answer=True)  # its jobs are built without it

    def _zygote_message(self, z: zygotes.Zygote, message: Any) -> None:
        kind = message["type"]
        if kind == "zygote-ready":
            z.files = {str(p): int(m) for p, m in message["files"].items()}
            return
        if kind == "zygote-failed":  # a prepared process could not run its text: it ends
            if self.prepared is z:
                self.prepared = None  # no job forks from it from now on
            for job_id, job in z.jobs.items():  # those it has take the usual way
                self.direct.add(job_id)
                self.queue.insert(0, (job_id, job))
            z.jobs.clear()
            return
        job_id = message["id"]
        job = z.jobs[job_id]  # KeyError: not one of its jobs
        if kind == "declined":
            reason, retire = str(message["reason"]), bool(message["retire"])
            del z.jobs[job_id]
            instead = "a new zygote imports" if retire else "a fresh child imports"
            print(
                f"paramlens: the zygote of {z.key[2]} declined a job of {job.module} "
                f"({reason[:500]}): {instead} the package",
                file=sys.stderr,
            )
            if retire:
                z.retire()
            else:
                self.direct.add(job_id)
            self.queue.insert(0, (job_id, job))
        elif kind == "building":
            name = message["name"]
            if name not in {spec.name for spec in job.classes}:
                raise ValueError(f"building {name!r}, which its job did not ask for")
            self.send({"type": "building", "id": job_id, "name": name})
        elif kind == "staged" and job.staged:
            model = self._relayed(message["result"], protocol.model_result)
            name, file = _field(model, "name"), _field(model, "file")
            if name not in {spec.name for spec in job.classes} or file != job.file:
                raise ValueError(f"a staged result for {name}, which its job did not ask for")
            self.send({"type": "staged", "id": job_id, "result": model})
        elif kind == "cancelled":
            del z.jobs[job_id]
            self.send({"type": "cancelled", "id": job_id})
        elif kind == "result":
            result = self._relayed(message["result"], protocol.job_result)
            asked = {spec.name for spec in job.classes}
            for model in _field(result, "models"):
                name, file = _field(model, "name"), _field(model, "file")
                if name not in asked or file != job.file:
                    raise ValueError(f"a result for {name}, which its job did not ask for")
            del z.jobs[job_id]  # a job it got wrong is rebuilt without it
            self.send({"type": "result", "id": job_id, "result": result})
        else:
            raise ValueError(f"unknown message type {kind!r}")

    def _relayed(self, message: Any, parse: Callable[[dict[str, Any]], _R]) -> _R | dict[str, Any]:
        """A result (a model's or a job's, as ``parse`` reads it) from a child or a zygote,
        parsed and checked whole by the worker.

        In a zygote (``nested``), it stays the JSON object it came as, checked by the
        callers for what the zygote relies on: the worker checks all of it when the zygote
        sends it on (a zygote runs the user's code, so its own checks would stand for
        nothing), and decoding and encoding the whole of it at each hop cost 10 ms a
        message for LLaMA-7B's result (330 KB), a second of the CPU that an edit's builds
        share."""
        if not isinstance(message, dict):
            raise TypeError("a result that is not an object")
        if self.nested:
            return message
        result = parse(message)
        protocol.check_types(result)
        return result

    def _zygote_ended(self, z: zygotes.Zygote, answer: bool) -> None:
        """Its jobs in flight are built without a zygote (or dropped at shutdown)."""
        self.selector.unregister(z.from_fd)
        os.close(z.from_fd)
        if z.to_fd >= 0:
            os.close(z.to_fd)
        del self.zygotes[z.from_fd]
        if self.prepared is z:
            self.prepared = None
        z.kill()
        with contextlib.suppress(OSError):
            os.waitpid(z.pid, 0)
        if answer and not self.done:
            for job_id, job in z.jobs.items():
                self.direct.add(job_id)
                self.queue.insert(0, (job_id, job))

    def _start(
        self,
        job_id: int,
        job: BuildJob,
        pending: list[ClassSpec],
        results: dict[str, ModelResult | dict[str, Any]],
        refresh: child.Refresh | None = None,
    ) -> None:
        scratch = tempfile.mkdtemp(dir=self.scratch_root)
        this_run = replace(job, classes=tuple(pending))
        read_fd, write_fd = os.pipe()
        proc = None
        parent = os.getpid()
        if self.use_fork:
            with worker_fork():
                pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                child.main(this_run, write_fd, scratch, parent, refresh)
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
            proc.stdin.write(protocol.dumps(this_run).encode())
            proc.stdin.close()
            pid = proc.pid
        os.close(write_fd)
        now = time.monotonic()
        running = Running(
            job_id, job, pending, pid, read_fd, scratch, now, now + self._allowance(job), proc
        )
        running.results = results
        running.refresh = refresh
        self.running[read_fd] = running
        self.selector.register(read_fd, selectors.EVENT_READ, None)

    def _allowance(self, job: BuildJob) -> float:
        # a fresh interpreter must import torch first
        return job.timeout_s + GRACE_S + (0 if self.use_fork else 30)

    def _read_child(self, running: Running) -> None:
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

    def _child_message(self, running: Running, message: Any) -> None:
        """Take in one message of the child; raise on anything malformed or forged."""
        kind = message["type"]
        if kind == "isolation":
            running.isolation = _strings(message["active"])
            running.notes = _strings(message["notes"])
        elif kind == "notes":
            running.notes += _strings(message["notes"])
        elif kind == "declined" and running.refresh is not None:
            running.declined = str(message["reason"])[:1000]
        elif kind == "start":
            running.current = self._pending_spec(running, message["name"]).name
            running.deadline = time.monotonic() + running.job.timeout_s + GRACE_S
            # the server names this class if the worker dies meanwhile (the OOM killer)
            self.send({"type": "building", "id": running.job_id, "name": running.current})
        elif kind == "staged" and running.job.staged:
            result = self._checked_model(running, message["result"])
            name = _field(result, "name")
            if running.current != name:
                raise ValueError(f"a staged result for {name}, not being built")
            if not _field(_field(result, "forward"), "step_pending"):
                raise ValueError(f"a staged result for {name} with no step pending")
            self.send({"type": "staged", "id": running.job_id, "result": result})
        elif kind == "model":
            result = self._checked_model(running, message["result"])
            spec = self._pending_spec(running, _field(result, "name"))
            running.results[spec.name] = result
            if running.job.staged:  # a class of the job is final: shown before the rest
                self.send({"type": "staged", "id": running.job_id, "result": result})
            running.pending = [c for c in running.pending if c.name != spec.name]
            running.current = None
            if not running.pending:  # answer now: the child's exit (its PID and network
                self._finish(running)  # namespaces torn down) takes another 130 ms
        else:
            raise ValueError(f"unknown message type {kind!r}")

    def _checked_model(self, running: Running, message: Any) -> ModelResult | dict[str, Any]:
        """A class's result as the child sent it (:meth:`_relayed`), checked for its job,
        placed at its spec's line."""
        result = self._relayed(message, protocol.model_result)
        name, file = _field(result, "name"), _field(result, "file")
        spec = self._pending_spec(running, name)
        if running.current not in (None, spec.name):
            raise ValueError(f"a result for {spec.name} while building {running.current}")
        if file != running.job.file:
            raise ValueError(f"a result for {spec.name} in another file ({file})")
        if isinstance(result, dict):
            return {**result, "line": spec.line, "kind": spec.kind}
        return replace(result, line=spec.line, kind=spec.kind)

    def _pending_spec(self, running: Running, name: object) -> ClassSpec:
        for spec in running.pending:
            if spec.name == name and name not in running.results:
                return spec
        raise ValueError(f"a result for {name!r}, which this job did not ask for (or yet)")

    def _reap(self, running: Running) -> None:
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
        elif running.pending and not running.cancelled and not running.declined:
            self._record_failure(running, status)  # reads the hang dump: before the cleanup
        shutil.rmtree(running.scratch, ignore_errors=True)
        if running.answered:
            return
        if running.cancelled:
            self.direct.discard(running.job_id)
            self.send({"type": "cancelled", "id": running.job_id})
            return
        if running.declined:
            self._decline(running.job_id, running.declined, retire=False)
            return
        rest = [c for c in running.pending if c.name not in running.results]
        if rest and not self.done:  # the classes after a killed or crashed one
            self._start(running.job_id, running.job, rest, running.results, running.refresh)
            return
        self._finish(running)

    def _record_failure(self, running: Running, status: str) -> None:
        """The class the child died on gets the error (all pending ones if it died importing)."""
        failed_on = running.pending[0] if running.current is None else self._spec(running)
        if running.timed_out:
            hung = hung_line(running)
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
            file, line = hung_line(running) or (running.job.file, failed_on.line)
            error = ErrorInfo(message, file, line, "crash")
        stuck = [failed_on] if running.current is not None else running.pending
        for spec in stuck:
            running.results[spec.name] = ModelResult.failed(spec, running.job.file, error)

    def _spec(self, running: Running) -> ClassSpec:
        return next(c for c in running.pending if c.name == running.current)

    def _wait(self, running: Running) -> str:
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

    def _kill(self, running: Running) -> None:
        """Kill the child's whole process group (it called setsid), or at least the child."""
        if running.proc is not None and not hasattr(os, "killpg"):
            running.proc.kill()
            return
        try:
            os.killpg(running.pid, signal.SIGKILL)
        except OSError:
            with contextlib.suppress(OSError):
                os.kill(running.pid, signal.SIGKILL)

    def _finish(self, running: Running) -> None:
        running.answered = True
        self.direct.discard(running.job_id)
        models = [running.results[c.name] for c in running.job.classes if c.name in running.results]
        result = JobResult(
            (),
            isolation=running.isolation,
            notes=running.notes,
            elapsed_ms=round((time.monotonic() - running.started) * 1000, 2),
        )
        # its models as they are kept: dataclasses, or a zygote's JSON objects
        sent = {**protocol.json_default(result), "models": models}
        self.send({"type": "result", "id": running.job_id, "result": sent})


_R = TypeVar("_R")


def _field(value: Any, name: str) -> Any:
    """A result's field: of its dataclass, or of its JSON object as a zygote relays it."""
    if isinstance(value, dict):
        return value.get(name)
    return getattr(value, name, None)


_SIGNAL_HINTS = {
    "SIGSEGV": ": a crash in C code, or a C stack overflow from deep recursion",
    "SIGKILL": ": out of memory, or killed by another process",
    "SIGABRT": ": C code aborted",
}


def _strings(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError("expected a list of strings")
    return tuple(values)


def hung_line(running: Running) -> tuple[str, int] | None:
    """The workspace line a killed child was stuck on, from its faulthandler dump."""
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
