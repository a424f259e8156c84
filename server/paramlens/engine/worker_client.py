"""Start the worker in the user's interpreter and talk to it (server side, asyncio).

The worker has an explicit life cycle (stopped -> starting -> running ->
exited/errored). Its stderr goes to the log. A worker that cannot start raises
:class:`WorkerStartError`; one that exits while running fails every pending
request with :class:`WorkerDied` (naming the class each job was building), and
the next request starts a fresh one. A worker that sends nothing for longer than any of
its pending jobs may take (:meth:`WorkerClient.silence_limit`) is stuck: it is killed, and
its jobs fail the same way, never left to wait forever. An answer that cannot be read
fails its own job only. How it is started, with which environment, is
:mod:`.spawn`'s; a worker the command line started before its event loop ran is
adopted as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import os
import signal
import subprocess
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..worker import protocol
from ..worker.protocol import BuildJob, JobResult, ModelResult, WorkerInfo
from .spawn import worker_command, worker_environment


class WorkerError(Exception):
    """The worker could not start, died while a job was pending, or answered a job with
    something that could not be read."""


class WorkerStartError(WorkerError):
    """The worker could not start: no such interpreter, no torch in it, it exited early."""


class WorkerDied(WorkerError):
    """A running worker exited (OOM killer, ``kill -9``) while this job was pending.

    ``building`` names the class its build child had started, if it had: the worker died
    while that class was being built (perhaps because of it)."""

    def __init__(self, job: BuildJob, building: str | None, exit_text: str) -> None:
        self.job = job
        self.building = building
        self.exit_text = exit_text
        where = os.path.basename(job.file)
        if building is not None:
            what = f"while building {building} in {where}"
        else:
            what = f"before building {where}"
        super().__init__(f"the paramlens worker died {what} ({exit_text})")


class State(enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"
    ERRORED = "errored"


_STREAM_LIMIT = 1 << 26  # one result line: LLaMA-70B's is 0.7 MB
CANCEL_WAIT_S = 10.0  # a cancelled job's build is killed at once: this bound is for bugs
# What a worker with jobs may spend without a word beyond one class's timeout: the worker
# kills a build child at its deadline, and a zygote silent for twice its import budget
# (60 s) beyond it, and says so. A worker quiet for longer than this is itself stuck (a
# lost message, a process blocked in C code).
SILENCE_MARGIN_S = 180.0


class _StartedEarly:
    """A worker the command line started before its event loop ran, behind the part of
    ``asyncio.subprocess.Process`` this module uses: its pipes as asyncio streams."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ) -> None:
        self._popen = popen
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr

    @classmethod
    async def adopt(cls, popen: subprocess.Popen[bytes]) -> _StartedEarly:
        assert popen.stdin is not None and popen.stdout is not None and popen.stderr is not None
        loop = asyncio.get_running_loop()

        async def reader(pipe: Any) -> asyncio.StreamReader:
            stream = asyncio.StreamReader(limit=_STREAM_LIMIT)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), pipe)
            return stream

        stdout, stderr = await reader(popen.stdout), await reader(popen.stderr)
        transport, flow = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), popen.stdin
        )
        return cls(popen, asyncio.StreamWriter(transport, flow, None, loop), stdout, stderr)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def kill(self) -> None:
        self._popen.kill()

    async def wait(self) -> int:
        while (code := self._popen.poll()) is None:  # once asked to stop: milliseconds
            await asyncio.sleep(0.005)
        return code


def _kill_unused(popen: subprocess.Popen[bytes]) -> None:
    """A worker started early that no job needed: the class named is not there, the folder
    has no models. Killed with all it started, not left to exit once torch is imported."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()
    for pipe in (popen.stdin, popen.stdout, popen.stderr):
        if pipe is not None:
            pipe.close()


class WorkerClient:
    def __init__(
        self,
        python: str,
        log: Callable[[str], None] = lambda _: None,
        started: subprocess.Popen[bytes] | None = None,
        silence_margin_s: float = SILENCE_MARGIN_S,
    ) -> None:
        """``started``: the worker's process, started already (``spawn.start_worker``)."""
        self.python = python
        self.log = log
        self.silence_margin_s = silence_margin_s
        self._heard = time.monotonic()  # the worker's last message, or the first job's sending
        self._silenced = ""  # why this client killed its worker, if it did
        self.state = State.STOPPED
        self.info: WorkerInfo | None = None
        self._started = started
        self._process: asyncio.subprocess.Process | _StartedEarly | None = None
        self._pending: dict[int, asyncio.Future[JobResult]] = {}
        self._jobs: dict[int, BuildJob] = {}  # pending jobs, for the message if it dies
        self._building: dict[int, str] = {}  # pending job -> the class its child started
        # pending staged job -> what takes each class's result before the job's end
        self._staged: dict[int, Callable[[ModelResult], None]] = {}
        # jobs the worker has not answered yet (a result, or "cancelled"), by file: a
        # cancelled one may still be building until the worker has killed its child
        self.in_worker: dict[int, str] = {}
        self._cancelling: dict[int, asyncio.Future[None]] = {}
        self.on_death: Callable[[WorkerDied], None] = lambda _: None
        self._ids = itertools.count(1)
        self._start_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, send_first: dict[str, Any] | None = None) -> WorkerInfo:
        """Start the worker unless it runs; ``send_first`` is written to it as soon as it is
        spawned, before its ready line is read (the server may be busy meanwhile)."""
        async with self._start_lock:
            if self.state is State.RUNNING and self.info is not None:
                if send_first is not None:
                    self._write(send_first)
                return self.info
            self.state = State.STARTING
            try:
                if self._started is not None:
                    self._process = await _StartedEarly.adopt(self._started)
                    self._started = None
                else:
                    self._process = await asyncio.create_subprocess_exec(
                        *worker_command(self.python),
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.PIPE,
                        env=worker_environment(),
                        start_new_session=True,
                        limit=_STREAM_LIMIT,
                    )
            except OSError as exc:
                self.state = State.ERRORED
                raise WorkerStartError(f"cannot start {self.python}: {exc}") from exc
            assert self._process.stdout is not None and self._process.stderr is not None
            if send_first is not None:
                self._write(send_first)
            self._tasks = [asyncio.create_task(self._read_stderr(self._process.stderr))]
            try:
                first = await self._process.stdout.readline()
            except asyncio.CancelledError:  # nobody waits for this worker any more
                with contextlib.suppress(ProcessLookupError):
                    self._process.kill()
                self.state = State.STOPPED
                raise
            message = json.loads(first) if first.strip().startswith(b"{") else {}
            if message.get("type") != "ready":
                self.state = State.ERRORED
                await self._reap()
                text = message.get("message") or f"the worker exited ({self._exit_text()})"
                raise WorkerStartError(text)
            self.info = protocol.worker_info(message["info"])
            self.state = State.RUNNING
            self._silenced = ""
            self._tasks.append(asyncio.create_task(self._read_stdout(self._process.stdout)))
            self._tasks.append(asyncio.create_task(self._watch(self._process)))
            self.log(
                f"worker ready: {self.info.python} (Python {self.info.python_version}, "
                f"torch {self.info.torch_version}) in {self.info.startup_ms:.0f} ms, "
                f"pid {self._process.pid}"
            )
            return self.info

    async def build(
        self, job: BuildJob, on_staged: Callable[[ModelResult], None] | None = None
    ) -> JobResult:
        """Run one job; cancelling the awaiting task cancels the job in the worker. A
        ``staged`` job's classes go to ``on_staged`` as they come (before their training
        step, and once final), ahead of the job's result."""
        await self.start()
        await self._cancelled_builds_of(job.file)
        assert self._process is not None and self._process.stdin is not None
        job_id = next(self._ids)
        future: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
        if not self._pending:  # the time it had nothing to do is not silence
            self._heard = time.monotonic()
        self._pending[job_id] = future
        self._jobs[job_id] = job
        if on_staged is not None and job.staged:
            self._staged[job_id] = on_staged
        self._write({"type": "build", "id": job_id, "job": job})
        self.in_worker[job_id] = job.file
        self.log(f"job {job_id} sent: {os.path.basename(job.file)}, {len(job.classes)} to build")
        try:
            await self._process.stdin.drain()
            return await future
        except asyncio.CancelledError:
            if job_id in self.in_worker:
                self._cancelling[job_id] = asyncio.get_running_loop().create_future()
            with contextlib.suppress(Exception):
                self._write({"type": "cancel", "id": job_id})
            raise
        except (ConnectionError, BrokenPipeError):
            raise WorkerDied(job, None, self._exit_text()) from None
        finally:
            self._pending.pop(job_id, None)
            self._jobs.pop(job_id, None)
            self._building.pop(job_id, None)
            self._staged.pop(job_id, None)

    async def _cancelled_builds_of(self, file: str) -> None:
        """Wait until the worker has stopped the cancelled jobs of ``file`` (it kills their
        build at once): one file's edits never have two of its builds in the worker."""
        waiting = [f for i, f in self._cancelling.items() if self.in_worker.get(i) == file]
        if waiting:
            await asyncio.wait(waiting, timeout=CANCEL_WAIT_S)

    def _answered(self, job_id: int, how: str) -> None:
        """The worker is done with ``job_id``: it sent its result, or stopped it."""
        if self.in_worker.pop(job_id, None) is not None:
            self.log(f"job {job_id} {how}")
        stopped = self._cancelling.pop(job_id, None)
        if stopped is not None and not stopped.done():
            stopped.set_result(None)

    async def prepare(self, job: BuildJob) -> None:
        """Start the worker, and let it get ready for jobs like ``job`` (its zygote imports
        the job's package) while the server is still reading the workspace."""
        await self.start(send_first={"type": "prepare", "job": job})

    def prepare_edit(self, job: BuildJob) -> None:
        """Let a running worker's zygote run an edit's modules again before its jobs come
        (``job``: its module and unsaved texts, no class)."""
        if self.state is State.RUNNING:
            with contextlib.suppress(Exception):  # a dead worker: the next build says so
                self._write({"type": "prepare-edit", "job": job})

    def _write(self, message: dict[str, Any]) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write((protocol.dumps(message) + "\n").encode())

    def _ask_to_stop(self, process: asyncio.subprocess.Process | _StartedEarly) -> None:
        """Send ``shutdown`` and close stdin: the worker kills its builds and exits."""
        with contextlib.suppress(Exception):
            self._write({"type": "shutdown"})
        if process.stdin is not None:
            with contextlib.suppress(Exception):
                process.stdin.close()

    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self._heard = time.monotonic()
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                self.log(f"worker: {line.decode(errors='replace').rstrip()}")
                continue
            try:
                self._take(message)
            except Exception as exc:  # one answer it cannot read fails its job, not the rest
                self.log(f"an unreadable message of the worker: {traceback.format_exc()}")
                self._unreadable(message, exc)
        await self._reap()
        if self._process is not None and self._process.stdin is not None:
            self._process.stdin.close()  # lets asyncio close the transport now
        self.state = State.EXITED
        for job_id in list(self.in_worker):
            self._answered(job_id, "lost with the worker")
        exit_text = self._exit_text()
        deaths = []
        for job_id, future in self._pending.items():
            if not future.done():
                death = WorkerDied(self._jobs[job_id], self._building.get(job_id), exit_text)
                future.set_exception(death)
                deaths.append(death)
        if deaths or self._process is None or self._process.returncode != 0:
            # a worker that stopped when asked to is not news
            self.log(f"the worker exited ({exit_text})")
        if deaths:
            self.on_death(deaths[0])

    def _take(self, message: dict[str, Any]) -> None:
        """One message of the worker: a class started, a staged result, a job's answer."""
        job_id = int(message.get("id", 0))
        future = self._pending.get(job_id)
        if message.get("type") == "building" and job_id in self._pending:
            self._building[job_id] = str(message.get("name"))
        if message.get("type") == "staged" and job_id in self._staged:
            try:
                self._staged[job_id](protocol.model_result(message["result"]))
            except Exception:  # what shows it must not stop the worker's messages
                self.log(f"a staged result of job {job_id}: {traceback.format_exc()}")
        if message.get("type") == "result" and future is not None and not future.done():
            future.set_result(protocol.job_result(message["result"]))
        if message.get("type") in ("result", "cancelled"):
            self._answered(job_id, "done" if message["type"] == "result" else "cancelled")

    def _unreadable(self, message: object, exc: Exception) -> None:
        """The job ``message`` answers fails with what was wrong (the worker checked the
        answer before sending it: this is a bug of paramlens, said as one)."""
        if not isinstance(message, dict) or not isinstance(job_id := message.get("id"), int):
            return
        future = self._pending.get(job_id)
        if future is None or future.done():
            return
        if message.get("type") == "result":
            self._answered(job_id, "answered unreadably")
        where = os.path.basename(self._jobs[job_id].file)
        future.set_exception(
            WorkerError(f"the worker's answer for {where} could not be read ({exc!r})")
        )

    def silence_limit(self) -> float:
        """How long the worker may send nothing while jobs are pending: the longest timeout
        of one class among them, and the margin for imports (:data:`SILENCE_MARGIN_S`)."""
        longest = max((job.timeout_s for job in self._jobs.values()), default=0.0)
        return longest + self.silence_margin_s

    async def _watch(self, process: asyncio.subprocess.Process | _StartedEarly) -> None:
        """Kill the worker if it stays silent past :meth:`silence_limit` while jobs wait
        for it: its reader then fails them, naming the class each was building."""
        while process.returncode is None:
            await asyncio.sleep(min(5.0, self.silence_margin_s / 4))
            quiet = time.monotonic() - self._heard
            if not self._pending or quiet <= self.silence_limit():
                continue
            self._silenced = f"stopped by paramlens: silent for {quiet:.0f} s with jobs pending"
            waiting = ", ".join(os.path.basename(j.file) for j in self._jobs.values())
            self.log(f"the worker sent nothing for {quiet:.0f} s while building {waiting}")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            return

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.log(f"worker stderr: {line.decode(errors='replace').rstrip()}")

    async def _reap(self) -> None:
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._process.wait(), 5)

    def _exit_text(self) -> str:
        if self._silenced:
            return self._silenced
        code = self._process.returncode if self._process else None
        if code is not None and code < 0:
            return f"killed by signal {-code}"
        return f"exit code {code}"

    def terminate(self) -> None:
        """Stop without waiting (LSP shutdown must answer at once): ask, then kill soon."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        self._ask_to_stop(process)

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

        asyncio.get_running_loop().call_later(2, kill)

    async def stop(self) -> None:
        """Ask the worker to stop, then make sure nothing of it is left."""
        if self._started is not None:
            _kill_unused(self._started)
            self._started = None
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            self._ask_to_stop(process)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), 3)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), 3)
        if self._tasks:  # let its pipes reach EOF: the transport closes inside the loop then
            await asyncio.wait(self._tasks, timeout=1)
        for task in self._tasks:
            task.cancel()
        self.state = State.STOPPED
        self._process = None
        self.info = None
