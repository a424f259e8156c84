"""Isolation for the child process that runs user code (standard library only).

Each layer is tried in turn; a layer the platform lacks is skipped with a note,
never a crash. :func:`enter` returns the layers that are active, so every result
can say what protected it. Layers, strongest first:

- its own session/process group, so a timeout kills the child and all it spawned;
- an empty network namespace (Linux ``unshare``), so no connection can be made;
- resource limits: address space (the memory cap), CPU seconds, file size;
- Landlock (Linux 5.13+): the kernel refuses writes outside the scratch folder, C code too;
- an audit hook (PEP 578) that turns network access, process spawning and writes
  outside the scratch folder into clear exceptions at the user's line. It is a
  guard rail for Python-level calls, not a sandbox: C code (``torch.save``) is not seen.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

BLOCKED = "while paramlens builds models"
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_NETWORK_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.sendto",
        "socket.sendmsg",
    }
)
_SPAWN_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "os.startfile",
        "pty.spawn",
    }
)
_PATH_EVENTS = frozenset(
    {
        "os.remove",
        "os.rename",
        "os.rmdir",
        "os.mkdir",
        "os.chmod",
        "os.chown",
        "os.link",
        "os.symlink",
        "os.truncate",
        "os.utime",
        "shutil.rmtree",
        "shutil.copyfile",
        "shutil.move",
    }
)


def _libc() -> ctypes.CDLL:
    """The C library (already loaded in every Python process), with errno kept for messages."""
    return ctypes.CDLL(None, use_errno=True)


def _current_address_space() -> int:
    """Bytes of virtual memory the process maps now (Linux), else 0."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _unshare_network() -> str:
    if not sys.platform.startswith("linux"):
        return "network namespace: not available on this platform"
    libc = _libc()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return f"network namespace: unavailable ({os.strerror(ctypes.get_errno())})"
    return ""


def _die_with_parent(parent: int) -> str:
    """Ask Linux to kill us if the worker dies (else an orphan could run to its CPU limit)."""
    if not sys.platform.startswith("linux"):
        return "parent-death signal: not available on this platform"
    libc = _libc()
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return f"parent-death signal: unavailable ({os.strerror(ctypes.get_errno())})"
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(1)
    return ""


# Landlock (Linux >= 5.13): the kernel refuses writes outside the scratch folder, even from C
# code the audit hook cannot see. Syscall numbers are the same on every architecture.
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_FS_WRITE_FILE = 1 << 1
_FS_CHANGES = sum(1 << bit for bit in (1, 4, 5, 6, 7, 8, 9, 10, 11, 12))  # write, remove, make
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def _landlock_writes(scratch: str) -> str:
    """Only ``scratch`` (and /dev, for /dev/null) may be written; reading stays allowed."""
    if not sys.platform.startswith("linux"):
        return "Landlock: not available on this platform"
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        return f"Landlock: unavailable ({os.strerror(ctypes.get_errno())}): audit hook only"
    handled = _FS_CHANGES | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    attr = ctypes.c_uint64(handled)  # struct landlock_ruleset_attr, first (ABI 1) field
    ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), 8, 0)
    if ruleset < 0:
        return f"Landlock: cannot create a ruleset ({os.strerror(ctypes.get_errno())})"
    try:
        for path, allowed in ((scratch, handled), ("/dev", _FS_WRITE_FILE)):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneath(allowed & handled, fd)
                if libc.syscall(
                    _SYS_LANDLOCK_ADD_RULE,
                    ruleset,
                    _LANDLOCK_RULE_PATH_BENEATH,
                    ctypes.byref(rule),
                    0,
                ):
                    return f"Landlock: cannot add a rule ({os.strerror(ctypes.get_errno())})"
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return f"Landlock: no_new_privs refused ({os.strerror(ctypes.get_errno())})"
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            return f"Landlock: cannot restrict ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(ruleset)
    return ""


def _limit(name: str, soft: int, hard: int | None = None) -> str:
    import resource

    which = getattr(resource, name, None)
    if which is None:
        return f"{name}: not available on this platform"
    try:
        _, current_hard = resource.getrlimit(which)
        if hard is None:
            hard = soft
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(which, (soft, hard))
    except (OSError, ValueError) as exc:
        return f"{name}: not set ({exc})"
    return ""


_worker_forking = False


@contextlib.contextmanager
def worker_fork() -> Iterator[None]:
    """A zygote forks its build children: the one fork the audit hook lets through.

    Only paramlens's own loop forks this way, between builds; user code that forks is
    still refused (and the kernel layers hold whatever the audit hook allows).
    """
    global _worker_forking
    _worker_forking = True
    try:
        yield
    finally:
        _worker_forking = False


class _Guard:
    """The audit hook: denies network, process spawning and writes outside ``scratch``."""

    def __init__(self, scratch: str) -> None:
        self.scratch = os.path.realpath(scratch)

    def _outside(self, path: Any) -> str | None:
        if isinstance(path, int) or path is None:
            return None
        text = os.fsdecode(path)
        real = os.path.realpath(text)
        if real == os.devnull or real.startswith(self.scratch + os.sep) or real == self.scratch:
            return None
        return text

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            writes = flags & _WRITE_FLAGS or any(c in mode for c in "wax+")
            if writes and (path := self._outside(args[0])) is not None:
                raise PermissionError(f"writing to {path} is blocked {BLOCKED}")
        elif event in _NETWORK_EVENTS:
            raise ConnectionError(f"network access is blocked {BLOCKED}")
        elif event in _SPAWN_EVENTS:
            if event == "os.fork" and _worker_forking:
                return
            raise PermissionError(f"starting processes is blocked {BLOCKED}")
        elif event in _PATH_EVENTS:
            for arg in args[:2]:
                if isinstance(arg, (str, bytes, os.PathLike)):
                    path = self._outside(arg)
                    if path is not None:
                        raise PermissionError(f"changing {path} is blocked {BLOCKED}")


def enter(
    scratch: str, memory_mb: int, timeout_s: float, parent: int
) -> tuple[list[str], list[str]]:
    """Isolate the current (freshly forked, single-threaded) process.

    Returns (active layers, notes on layers that could not be set up).
    """
    active: list[str] = []
    notes: list[str] = []

    def layer(name: str, problem: str) -> None:
        (notes if problem else active).append(problem or name)

    try:
        os.setsid()
        layer("process group (timeout kills the whole group)", "")
    except OSError as exc:
        layer("", f"process group: not available ({exc})")
    layer("network namespace (no network)", _unshare_network())
    layer("dies with the worker (PR_SET_PDEATHSIG)", _die_with_parent(parent))

    baseline = _current_address_space()
    if sys.platform == "darwin" or baseline == 0:
        layer("", "memory cap: RLIMIT_AS is not enforced on this platform")
    else:
        layer(
            f"memory cap {memory_mb} MB (RLIMIT_AS)",
            _limit("RLIMIT_AS", baseline + memory_mb * 2**20),
        )
    cpu = int(timeout_s) * 2 + 5
    layer(f"CPU limit {cpu} s (RLIMIT_CPU)", _limit("RLIMIT_CPU", cpu, cpu + 1))
    layer("file size limit 256 MB (RLIMIT_FSIZE)", _limit("RLIMIT_FSIZE", 256 * 2**20))

    layer("Landlock (kernel refuses writes outside the scratch folder)", _landlock_writes(scratch))

    os.environ["TMPDIR"] = scratch
    tempfile.tempdir = scratch
    sys.dont_write_bytecode = True
    sys.addaudithook(_Guard(scratch))
    layer("audit hook (network, processes, writes outside the scratch folder)", "")
    return active, notes
