"""The worker's scratch folder: the only place its builds may write.

Made when the worker starts, removed when it exits. A worker that cannot exit cleanly (killed
by the out-of-memory killer, by ``kill -9``, by a server that could not wait) leaves it
behind, so each new worker first sweeps the folders of workers that are gone. A live worker
holds an exclusive ``flock`` on a file in its folder for as long as it (or a process it
forked) runs: a folder whose lock can be taken belongs to nobody. Locks, not process ids,
decide it, so a folder shared between containers with their own process ids is safe.
Platforms without ``fcntl`` make and remove the folder but never sweep. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time

try:
    import fcntl
except ImportError:  # Windows: no sweeping
    fcntl = None  # type: ignore[assignment]

PREFIX = "paramlens-worker-"
LOCK = ".alive"
UNLOCKED_GRACE_S = 600  # a folder without its lock file: a worker between mkdtemp and flock


def make(parent: str | None = None) -> tuple[str, int | None]:
    """Sweep the dead workers' folders under ``parent`` (the temp folder), then make this
    worker's and lock it. Returns the folder and the lock's descriptor (keep it open)."""
    parent = parent or tempfile.gettempdir()
    sweep(parent)
    root = tempfile.mkdtemp(prefix=PREFIX, dir=parent)
    if fcntl is None:
        return root, None
    # locked before it gets its name: a sweeper never sees the lock file unlocked
    fd = os.open(os.path.join(root, LOCK + ".new"), os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(os.path.join(root, LOCK + ".new"), os.path.join(root, LOCK))
    return root, fd


def sweep(parent: str) -> list[str]:
    """Remove the folders under ``parent`` of workers that no longer run; returns them."""
    if fcntl is None:
        return []
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            mine = entry.name.startswith(PREFIX) and entry.is_dir(follow_symlinks=False)
            if mine and _abandoned(entry.path):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
    return removed


def _abandoned(root: str) -> bool:
    assert fcntl is not None
    try:
        fd = os.open(os.path.join(root, LOCK), os.O_RDWR)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            return time.time() - os.stat(root).st_mtime > UNLOCKED_GRACE_S
        return False
    except OSError:
        return False  # not ours to judge (another user's folder)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: its worker runs
    finally:
        os.close(fd)  # releases the lock we may have taken
    return True
