"""A zygote's own body: import a workspace package once, then serve its jobs.

Importing a big package (timm, transformers) takes seconds; a cold summary of its
models folder runs a hundred jobs, and each job's child would import it again. A zygote
is forked from the worker, isolates itself like any build child (:mod:`..sandbox`),
imports the package as the loader does (:mod:`..loader`), and then runs the worker's
own job loop (:class:`.scheduler.Worker`, handed in by whoever forks it), forking each
job's child from itself, package already imported.

An edit of one of the package's modules does not cost that import again
(:mod:`..reload`): a saved file is run again in the zygote itself before its next job
(:func:`bring_up_to_date`), and an unsaved buffer in the job's child (:func:`edit_plan`).
When that cannot be made exact, the job is declined, saying why, and the worker builds it
without this zygote (retiring it if its own imports are stale).

An unsaved buffer's modules can also run again before its jobs come: the server sends
each edit's text at once (``prepare-edit``), its jobs only after its debounce. The zygote
then forks a *prepared* process (:func:`prepare_main`) that runs them again as a job's
child would, and serves the jobs of exactly that text: their children fork from it,
their module already run. One at a time: a newer text replaces it; a job of any other
text, or one that comes after the zygote's own imports changed, takes the usual way.
Standard library + torch only.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .. import reload, sandbox
from ..loader import ModuleRunner, WorkspaceFinder, is_workspace_file
from ..protocol import BuildJob
from ..wire import emit
from . import child
from .child import Refresh, install_workspace
from .startup import frozen_when_imported

# How long a zygote may take to import its package (and each parent a job's prepare names);
# PARAMLENS_IMPORT_BUDGET_S changes it (a package slower to import; the tests' stuck zygote)
IMPORT_BUDGET_S = float(os.environ.get("PARAMLENS_IMPORT_BUDGET_S") or 60.0)


@dataclass
class Imported:
    """What this zygote imported, and how: set once its package is imported."""

    workspace: str
    runner: ModuleRunner
    finder: WorkspaceFinder
    files: dict[str, int] = field(default_factory=dict)  # realpath -> mtime_ns
    plans: dict[frozenset[str], reload.Plan | str] = field(default_factory=dict)
    stale: str = ""  # why it can no longer build (its files changed, not run again)
    generation: int = 0  # bumped whenever what it imported changes: a prepared fork is behind
    newer: ModuleRunner | None = None
    _modules: reload.Modules | None = None

    def modules(self, newer: ModuleRunner | None = None) -> reload.Modules:
        """Its modules, as ``newer`` (a build child's runner) or its own runner last ran
        them; their import statements parsed once (a child forks with them parsed)."""
        self.newer = newer
        if self._modules is None:

            def statements(path: str) -> list[ast.stmt]:
                if self.newer is not None and path in self.newer.imports:
                    return self.newer.import_statements(path)
                return self.runner.import_statements(path)

            self._modules = reload.Modules(statements, self.runner.finished)
        return self._modules


IMPORTED: Imported | None = None  # in a zygote (and the build children it forks)


def imported_files(workspace: str) -> dict[str, int]:
    """The workspace files imported in this process, with their mtimes: when one changes,
    the worker retires the zygote."""
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


def import_module(job: BuildJob) -> None:
    """In a zygote, before an edit's job: the job's module itself, from disk, once. A
    package that imports its models lazily (transformers) left them to each child: every
    job after an edit imported ``modeling_llama`` and what it imports again (seconds),
    where the edited module (an unsaved ``configuration_llama``) could run again alone
    (:func:`edit_plan`). Failures are left for the child to report."""
    if job.overrides and job.module not in sys.modules:
        _import_quietly(job.module, IMPORT_BUDGET_S)
        _report_imported(job)


_AHEAD: list[BuildJob] = []  # jobs whose module this zygote imports once it is idle


def import_later(job: BuildJob) -> None:
    """After forking the child of a job whose module this zygote has not imported (a file
    opened, not edited): import it once the zygote is idle (:func:`import_ahead`). The
    first edit of a file it imports (``configuration_llama``) then runs only the edited
    modules again; it imported ``modeling_llama`` first, 0.9 s of that edit."""
    if (
        IMPORTED is not None
        and child.PREPARED is None
        and not job.overrides
        and job.module not in sys.modules
        and all(j.module != job.module for j in _AHEAD)
    ):
        _AHEAD.append(job)


def import_ahead() -> bool:
    """Import the first module :func:`import_later` left, if any is still not imported
    (within the job's own time: a module that takes longer is left to each child);
    whether one was."""
    while _AHEAD:
        job = _AHEAD.pop(0)
        if job.module not in sys.modules:
            started = time.monotonic()
            _import_quietly(job.module, min(IMPORT_BUDGET_S, job.timeout_s))
            elapsed = time.monotonic() - started
            print(f"paramlens zygote: imported {job.module} ({elapsed:.2f} s)", file=sys.stderr)
            _report_imported(job)
            return True
    return False


def _import_quietly(name: str, budget_s: float) -> None:
    """Import ``name`` within ``budget_s``, as user code runs here (:func:`_user_code_io`);
    a failure is logged (the build children import what they need themselves)."""
    try:
        with _user_code_io(), _budget(budget_s):  # the alarm ends before the fds return
            importlib.import_module(name)
    except BaseException as exc:
        print(f"paramlens zygote: importing {name} failed: {exc!r}", file=sys.stderr)


def _report_imported(job: BuildJob) -> None:
    workspace = os.path.normcase(os.path.realpath(job.workspace))
    files = imported_files(workspace)
    if IMPORTED is not None:
        IMPORTED.generation += 1
        IMPORTED.files = files
        IMPORTED.plans.clear()
        IMPORTED._modules = None  # what it ran again may import modules new to it
    emit(1, {"type": "zygote-ready", "files": files})


def _changed_on_disk(imported: Imported) -> list[str]:
    changed = []
    for path, mtime in imported.files.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                changed.append(path)
        except OSError:
            changed.append(path)
    return changed


def bring_up_to_date(job: BuildJob) -> str:
    """Before forking a job's child: run again the modules whose files changed on disk
    since they were imported (a save). Why this zygote can no longer build, if it cannot
    ("" if it can); then it stays so, and the worker retires it."""
    imported = IMPORTED
    if imported is None or imported.stale:
        return imported.stale if imported is not None else ""
    changed = _changed_on_disk(imported)
    if not changed:
        return ""
    started = time.monotonic()
    modules = imported.modules()
    names = reload.edited_modules(changed, modules)
    todo = _plan(names, modules) if names and len(names) == len(changed) else None
    if not isinstance(todo, reload.Plan):
        imported.stale = f"{', '.join(changed)} changed ({todo or 'removed'})"
        return imported.stale
    try:
        with _user_code_io(), _budget(IMPORT_BUDGET_S):
            reload.rerun(todo, modules, imported.finder.find_spec)
    except BaseException as exc:
        imported.stale = f"running {', '.join(todo.modules)} again failed: {exc!r}"
        return imported.stale
    elapsed = time.monotonic() - started
    _log(f"ran {', '.join(todo.modules)} again ({elapsed:.2f} s), not the whole package", todo)
    _report_imported(job)
    return ""


def edit_plan(job: BuildJob) -> Refresh | str | None:
    """For a job whose unsaved buffers override files this zygote imported: what its child
    must run again, or why it cannot build the job; None when none of its files is
    overridden."""
    imported = IMPORTED
    if imported is None or not job.overrides:
        return None
    overridden = frozenset(os.path.realpath(p) for p, _ in job.overrides) & set(imported.files)
    if not overridden:
        return None
    if overridden not in imported.plans:
        modules = imported.modules()
        names = reload.edited_modules(overridden, modules)
        todo: reload.Plan | str = f"{', '.join(sorted(overridden))} was not imported as a module"
        if len(names) == len(overridden):
            todo = _plan(names, modules)
        imported.plans[overridden] = todo
        if isinstance(todo, reload.Plan):
            _log(f"an unsaved {', '.join(names)} runs again in each job's child", todo)
    found = imported.plans[overridden]
    return Refresh(found, imported.modules) if isinstance(found, reload.Plan) else found


@dataclass(frozen=True)
class Decline:
    """Why this zygote cannot build a job; ``retire``: nor any other (its imports are stale)."""

    reason: str
    retire: bool = False


def before_fork(job: BuildJob) -> Refresh | Decline | None:
    """A zygote's steps before forking a job's child: its module imported, a save run
    again, the edit's plan, its parent packages imported. What the child runs again (None:
    nothing), or why the job is declined. In a prepared process, nothing: it ran its
    job's text already (or the job is not its text's, and declined)."""
    if child.PREPARED is not None:
        if child.PREPARED.overrides == job.overrides:
            return None
        return Decline("the process prepared for another text of its files")
    import_module(job)  # so that an edit runs its own module alone
    stale = bring_up_to_date(job)  # a save: its module runs again
    if stale:
        return Decline(stale, retire=True)
    plan = edit_plan(job)
    if isinstance(plan, str):
        return Decline(plan)
    import_parents(job)  # siblings in the same subpackage import it once
    return plan


def generation() -> int:
    """Which state of its imports this zygote is in (:attr:`Imported.generation`)."""
    return IMPORTED.generation if IMPORTED is not None else 0


def prepare_main(job: BuildJob, refresh: Refresh, serve: Callable[[], None]) -> None:
    """A prepared process, forked from its zygote for an edit's text (``job``: its module
    and unsaved texts, no class): run the edited modules again as a job's child does
    (:func:`.child.run_child`), then ``serve()`` the jobs of that text, their children
    forked from here. If running them fails, it ends: its jobs take the usual way, and
    their children say why."""
    sandbox.close_descriptors((0, 1, 2))  # not the zygote's pipes to its other processes
    started = time.monotonic()
    runner = install_workspace(job, dict(job.overrides))
    try:
        with _user_code_io(), _budget(job.timeout_s), sandbox.memory_capped(job.memory_mb):
            child.run_again(refresh, runner)
    except BaseException as exc:
        # said to the zygote first: a job of this text that comes after the log line below
        # never forks from here (it would be sent back when this process ends)
        emit(1, {"type": "zygote-failed"})
        print(
            f"paramlens zygote: preparing for an edit failed ({exc!r}); its jobs run "
            f"{', '.join(refresh.plan.modules)} again themselves",
            file=sys.stderr,
        )
        return
    child.PREPARED = child.Prepared(job.overrides, runner)
    elapsed = time.monotonic() - started
    print(f"paramlens zygote: prepared for the edit in {elapsed:.2f} s", file=sys.stderr)
    emit(1, {"type": "zygote-ready", "files": {}})
    serve()


def _plan(names: list[str], modules: reload.Modules) -> reload.Plan | str:
    """:func:`reload.plan`, whose failure is a reason to decline, never the zygote's end:
    it looks into the package's objects, and their code may run (and raise)."""
    try:
        return reload.plan(names, modules)
    except Exception as exc:
        return f"looking for what {', '.join(names)} made failed: {exc!r}"[:500]


def _log(message: str, todo: reload.Plan) -> None:
    print(f"paramlens zygote: {message}", file=sys.stderr)
    for why in todo.why:
        print(f"paramlens zygote:   {why}", file=sys.stderr)


@contextlib.contextmanager
def _budget(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _user_code_io() -> Iterator[None]:
    """User code's prints go to the log, never into the protocol (our stdout), and what it
    reads comes from ``/dev/null``, never from the protocol (our stdin: an ``input()`` in a
    package's ``__init__`` took the zygote's next job, which then waited forever)."""
    sys.stdout.flush()
    saved = os.dup(0), os.dup(1)
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        for fd, copy in enumerate(saved):
            os.dup2(copy, fd)
            os.close(copy)


def main(job: BuildJob, scratch_root: str, parent: int, serve: Callable[[str], None]) -> None:
    """Isolate, import the job's package, then ``serve(scratch)``: the job loop, nested."""
    scratch = tempfile.mkdtemp(dir=scratch_root)
    # The zygote holds the imported package; each build child caps itself again below this.
    cap_mb = job.memory_mb * 2 + 2048
    _, notes = sandbox.enter(scratch, cap_mb, IMPORT_BUDGET_S * 2, parent)
    for note in notes:
        print(f"paramlens zygote: {note}", file=sys.stderr)
    global IMPORTED
    runner = install_workspace(job, {})
    finder = sys.meta_path[0]
    assert isinstance(finder, WorkspaceFinder)
    workspace = os.path.normcase(os.path.realpath(job.workspace))
    IMPORTED = Imported(workspace, runner, finder)
    with frozen_when_imported():
        _import_quietly(job.module.partition(".")[0], IMPORT_BUDGET_S)
    _report_imported(job)
    serve(scratch)
