"""Starting the worker process: which interpreter, with which environment.

Light on purpose (the standard library only, no asyncio): the command line starts the
worker before it imports the rest of paramlens, so that torch imports meanwhile. The
worker gets an explicit environment: single-threaded OpenMP (forking a process that ran
OpenMP threads can hang the child) and none of the server's own ``PYTHONPATH`` entries.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .worker import BOOTSTRAP

WORKER_DIR = str(Path(__file__).parent / "worker")
_SERVER_PATHS = {str(Path(__file__).parent.parent)}


def worker_python(workspace: Path, configured: str | None) -> str:
    """The interpreter the settings name, else the workspace's ``.venv``/``venv`` one if
    there is one, else ours."""
    if configured:
        return configured
    for venv in (".venv", "venv"):
        for candidate in ("bin/python", "Scripts/python.exe"):
            path = workspace / venv / candidate
            if path.exists():
                return str(path)
    return sys.executable


def worker_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in _SERVER_PATHS]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        env.pop("PYTHONPATH", None)
    return env


def worker_command(python: str) -> list[str]:
    return [python, "-c", BOOTSTRAP, WORKER_DIR]


def start_worker(python: str) -> subprocess.Popen[bytes]:
    """The worker, started now: it imports torch, then reads jobs on its stdin. In its own
    session, so that a Ctrl-C in the terminal reaches the command line, which stops it."""
    return subprocess.Popen(
        worker_command(python),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=worker_environment(),
        start_new_session=True,
    )
