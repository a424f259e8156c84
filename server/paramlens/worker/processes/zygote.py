"""A zygote's own body: import a workspace package once, then serve its jobs.

Importing a big package (timm, transformers) takes seconds; a cold summary of its
models folder runs a hundred jobs, and each job's child would import it again. A zygote
is forked from the worker, isolates itself like any build child (:mod:`..sandbox`),
imports the package as the loader does (:mod:`..loader`), and then runs the worker's
own job loop (:class:`.scheduler.Worker`, handed in by whoever forks it), forking each
job's child from itself, package already imported. Standard library + torch only.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import tempfile
from collections.abc import Callable

from .. import sandbox
from ..loader import is_workspace_file
from ..protocol import BuildJob
from ..wire import emit
from .child import install_workspace
from .startup import frozen_when_imported

IMPORT_BUDGET_S = 60.0


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
    workspace = os.path.normcase(os.path.realpath(job.workspace))
    emit(1, {"type": "zygote-ready", "files": imported_files(workspace)})


def main(job: BuildJob, scratch_root: str, parent: int, serve: Callable[[str], None]) -> None:
    """Isolate, import the job's package, then ``serve(scratch)``: the job loop, nested."""
    scratch = tempfile.mkdtemp(dir=scratch_root)
    # The zygote holds the imported package; each build child caps itself again below this.
    cap_mb = job.memory_mb * 2 + 2048
    _, notes = sandbox.enter(scratch, cap_mb, IMPORT_BUDGET_S * 2, parent)
    for note in notes:
        print(f"paramlens zygote: {note}", file=sys.stderr)
    install_workspace(job, {})
    with frozen_when_imported():
        _import_quietly(job.module.partition(".")[0], IMPORT_BUDGET_S)
    _report_imported(job)
    serve(scratch)
