"""Starting the worker process: which interpreter, with which environment.

Light on purpose (the standard library only, no asyncio): the command line starts the
worker before it imports the rest of paramlens, so that torch imports meanwhile. The
worker gets an explicit environment: single-threaded OpenMP (forking a process that ran
OpenMP threads can hang the child) and none of the server's own ``PYTHONPATH`` entries.
The same environment runs the interpreter once to ask where its libraries are
(:func:`library_paths`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .. import worker
from ..worker import BOOTSTRAP

WORKER_DIR = str(Path(worker.__file__).parent)
_SERVER_PATHS = {str(Path(worker.__file__).parent.parent.parent)}  # where paramlens imports from


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


_PATHS_SCRIPT = """
import json, os, sys, sysconfig
std = [os.path.realpath(sysconfig.get_path(k)) for k in ("stdlib", "platstdlib")]
def keep(p):
    real = os.path.realpath(p)
    in_std = any(real == s or real.startswith(s + os.sep) for s in std)
    return os.path.isdir(p) and (not in_std or "-packages" in real)
print(json.dumps([p for p in sys.path[1:] if p and keep(p)]))
"""


def library_paths(python: str, log: Callable[[str], None] = lambda _: None) -> tuple[str, ...]:
    """``sys.path`` of ``python`` without its standard library: site-packages, the folders
    of ``.pth`` files and ``PYTHONPATH``. Asked of the interpreter itself (about 20 ms)."""
    try:
        done = subprocess.run(
            [python, "-c", _PATHS_SCRIPT],
            capture_output=True,
            text=True,
            timeout=20,
            env=worker_environment(),
            check=True,
        )
        paths = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        log(
            f"paramlens: the installed libraries of {python} cannot be read ({exc}):"
            " classes built on their models show no figures"
        )
        return ()
    return tuple(str(p) for p in paths if isinstance(p, str))
