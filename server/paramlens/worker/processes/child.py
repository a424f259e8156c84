"""A build child: the forked (or, without fork, freshly started) process that builds
one job's classes.

It isolates itself (:mod:`..sandbox`), imports the user's file as definitions only
(:mod:`..loader`), builds each class (:mod:`..build.builder`) under the job's deadline,
and streams one message per class to the worker (:mod:`.scheduler`) through a pipe. If
the deadline's alarm is ignored, the worker kills it; the faulthandler dump it leaves
in its scratch folder says which line hung. Standard library + torch only.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TextIO

import torch

from .. import loader, reload, sandbox
from ..build.builder import build_class
from ..build.context import BuildContext
from ..build.errors import BuildTimeout, error_from_exception
from ..build.sites import SiteRecorder
from ..loader import Failure, ModuleRunner
from ..protocol import BuildJob, ClassSpec, ModelResult
from ..wire import emit

GRACE_S = 2.0  # the child's own alarm fires at the timeout; the worker kills it after this
HANG_FILE = "hang-traceback.txt"  # in its scratch folder: where it hung, if it was killed


def run_child(
    job: BuildJob, out_fd: int, scratch: str, parent: int, refresh: Refresh | None = None
) -> None:
    """Isolate, import the user's module, build each class; stream results to ``out_fd``.
    Forked from a zygote, first run ``refresh``'s modules again: the edited ones, from the
    job's unsaved buffers (:mod:`..reload`)."""
    hang_file = _isolate(job, out_fd, scratch, parent)
    workspace = os.path.normcase(os.path.realpath(job.workspace))
    overrides = dict(job.overrides)

    def is_user_file(filename: str) -> bool:
        return loader.is_workspace_file(filename, workspace) or filename in overrides

    prepared = PREPARED if PREPARED is not None and PREPARED.overrides == job.overrides else None
    if prepared is not None:  # forked from a process that ran this job's texts already
        runner = prepared.runner
        sys.argv = [job.file]
    else:
        runner = install_workspace(job, overrides)
    deadline = _Deadline(job, runner, hang_file)
    try:
        with deadline.running(None):
            if refresh is not None:
                run_again(refresh, runner)
            module = importlib.import_module(job.module)
    except reload.Unsafe as exc:
        emit(out_fd, {"type": "declined", "reason": str(exc)})
        return
    except BaseException as exc:
        error = error_from_exception(exc, is_user_file, job.memory_mb)
        if error.kind == "exception":
            error = replace(error, kind="import")
        for spec in job.classes:
            emit(out_fd, {"type": "model", "result": ModelResult.failed(spec, job.file, error)})
        return
    if runner.failures:
        emit(out_fd, {"type": "notes", "notes": [_failure_note(f, job) for f in runner.failures]})

    ctx = BuildContext(
        namespace=module.__dict__,
        file=job.file,
        device=job.device,
        recorder=SiteRecorder(is_user_file),
        is_user_file=is_user_file,
        memory_mb=job.memory_mb,
        detailed=None if job.detail else set(),
        shapes=job.shapes,
        training=job.training,
        dims=job.dims,
        line_shapes=job.line_shapes,
        on_staged=(lambda result: emit(out_fd, {"type": "staged", "result": result}))
        if job.staged
        else None,
    )

    def build(spec: ClassSpec) -> None:
        emit(out_fd, {"type": "start", "name": spec.name})
        try:
            with deadline.running(spec.name):
                result = build_class(spec, ctx)
        except BaseException as exc:  # SystemExit from user code, a late alarm, ...
            result = ModelResult.failed(spec, job.file, ctx.error(exc))
        emit(out_fd, {"type": "model", "result": result})
        built.add(spec.name)

    built: set[str] = set()
    for index, spec in enumerate(job.classes):
        if spec.name in built:
            continue
        if _takes_arguments_from_parents(spec, ctx):
            # a block whose forward() takes several arguments gets those a model that holds
            # it passes: the job's later classes that are not such blocks run first, until
            # one of them called it (the scheduler puts results back in the job's order)
            for later in job.classes[index + 1 :]:
                if not ctx.parents.wanted(ctx.namespace.get(spec.name)):
                    break
                holder = later.kind == "class" and not _takes_arguments_from_parents(later, ctx)
                if holder and later.name not in built:
                    build(later)
        build(spec)


def _takes_arguments_from_parents(spec: ClassSpec, ctx: BuildContext) -> bool:
    return (
        ctx.shapes
        and spec.kind == "class"
        and spec.input is None
        and ctx.parents.wanted(ctx.namespace.get(spec.name))
    )


@dataclass(frozen=True)
class Refresh:
    """What a child forked from a zygote runs again before importing its module: the
    edited modules (:mod:`..reload`), from the job's unsaved buffers."""

    plan: reload.Plan
    # the zygote's workspace modules, as the zygote's runner and then ours last ran them
    modules: Callable[[ModuleRunner], reload.Modules]


@dataclass(frozen=True)
class Prepared:
    """In a process prepared for an edit (:func:`.zygote.prepare_main`): the unsaved texts
    whose modules it ran again, as a job's child would have, and the runner that ran them.
    Its jobs' children, forked from it, build at once: a job with exactly these texts only
    (:func:`.zygote.before_fork` routes no other job to it)."""

    overrides: tuple[tuple[str, str], ...]
    runner: ModuleRunner


PREPARED: Prepared | None = None


def run_again(refresh: Refresh, runner: ModuleRunner) -> None:
    """Run the plan's modules again from this job's texts, in place of the zygote's."""
    finder = sys.meta_path[0]  # this job's own: it serves the unsaved buffers
    if not isinstance(finder, loader.WorkspaceFinder):
        raise reload.Unsafe("the workspace's finder is not first")
    started = time.monotonic()
    reload.rerun(refresh.plan, refresh.modules(runner), finder.find_spec)
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in reload.timings.items())
    print(
        f"paramlens: ran {', '.join(refresh.plan.modules)} again in "
        f"{time.monotonic() - started:.2f} s ({parts}; the package stays imported)",
        file=sys.stderr,
    )


def _isolate(job: BuildJob, out_fd: int, scratch: str, parent: int) -> TextIO:
    """Enter the sandbox and say which of its layers are active; the file a crash in C or a
    hang is dumped to."""
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
    return hang_file


class _Deadline:
    """The job's alarm, armed for each step: a :class:`BuildTimeout` that names the step
    it stopped (importing which file, building which class). If the alarm is ignored, the
    worker kills the child; the faulthandler dump then says which line hung."""

    def __init__(self, job: BuildJob, runner: ModuleRunner, hang_file: TextIO) -> None:
        self.job, self.runner, self.hang_file = job, runner, hang_file
        self.building: str | None = None  # None while importing
        signal.signal(signal.SIGALRM, self._on_alarm)

    def _on_alarm(self, signum: int, frame: object) -> None:
        if self.building is None:
            importing = self.runner.importing
            step = importing_step(self.job, importing[-1] if importing else None)
        else:
            step = f"building {self.building}"
        timeout = self.job.timeout_s
        raise BuildTimeout(f"{step} took longer than {timeout:g} s; paramlens stopped it")

    @contextlib.contextmanager
    def running(self, building: str | None) -> Iterator[None]:
        self.building = building
        faulthandler.dump_traceback_later(self.job.timeout_s + GRACE_S / 2, file=self.hang_file)
        signal.setitimer(signal.ITIMER_REAL, self.job.timeout_s)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            faulthandler.cancel_dump_traceback_later()


def install_workspace(job: BuildJob, overrides: dict[str, str]) -> ModuleRunner:
    """Make the job's workspace importable the paramlens way (:mod:`.loader`); the
    :class:`~..loader.ModuleRunner` that runs its modules, and keeps what failed."""
    workspace = os.path.normcase(os.path.realpath(job.workspace))
    # Module-level statements run on the meta device: `model = Net()` allocates no weights.
    runner = loader.ModuleRunner(lambda: torch.device("meta"))
    # a module whose file is not Python (a notebook) is found by its name, not by search
    named = {} if job.file.endswith(".py") else {job.module: job.file}
    loader.install(job.sys_path, workspace, overrides, runner, named)
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


def main(
    job: BuildJob, out_fd: int, scratch: str, parent: int, refresh: Refresh | None = None
) -> None:
    code = 0
    try:
        run_child(job, out_fd, scratch, parent, refresh)
    except BaseException:
        with contextlib.suppress(BaseException):  # even an exception whose __str__ raises
            traceback.print_exc()
        code = 70
    finally:
        sandbox.exit_now(code)
