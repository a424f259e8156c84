"""The worker process: a long-lived process in the user's interpreter.

Started by the server (``paramlens.engine.worker_client``) through ``BOOTSTRAP``, it
imports torch once, warms the meta device (:mod:`.startup`), says it is ready, and then
runs the job loop (:mod:`.scheduler`) until its stdin closes. Run with ``--child`` (no
fork on this platform), it is one build child instead (:mod:`.child`).
Standard library + torch only.
"""

from __future__ import annotations

import json
import os
import sys
import time

from .. import protocol
from ..wire import emit
from .startup import defer_dynamo, frozen_when_imported, warm_meta

# What imports torch (the job loop, the build children's code) is imported in main(), once
# the environment is set for torch and the collector is off (:mod:`.startup`); and only if
# torch imports at all, which the server is told otherwise.


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch: forked children can hang
    if argv[:1] == ["--child"]:
        from . import child

        job = protocol.build_job(json.loads(sys.stdin.read()))
        os.environ["PARAMLENS_CHILD"] = "1"
        child.main(job, int(argv[1]), argv[2], int(argv[3]))
    started = time.perf_counter()
    with frozen_when_imported():
        try:
            import torch
        except ImportError as exc:
            message = f"cannot import torch in {sys.executable}: {exc}"
            emit(1, {"type": "fatal", "message": message})
            sys.exit(3)
        torch.set_num_threads(1)
        defer_dynamo()
        warm_meta()
        from .scheduler import Worker  # and every module a build child runs, before forking
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
    worker = Worker(use_fork, max(1, min(4, os.cpu_count() or 1)))  # its scratch folder too
    emit(1, {"type": "ready", "info": info})
    worker.run()
    # Skip the interpreter's teardown: with torch loaded it takes most of a second, and the
    # server (or the CLI) is waiting for us. Everything we own is already cleaned up.
    os._exit(0)
