"""Isolation for the child process that runs user code (standard library only).

Each layer is tried in turn; a layer the platform lacks is skipped with a note,
never a crash. :func:`enter` returns the layers that are active, so every result
can say what protected it. Layers, strongest first:

- its own session/process group, so a timeout kills the child and all it spawned;
- an empty network namespace (Linux ``unshare``), so no connection can be made;
- a PID namespace whose first process builds: when it exits, the kernel kills whatever
  it started (a ``setsid`` grandchild, a fork from C), and no process outside is visible;
- resource limits: address space (the memory cap), CPU seconds, file size;
- Landlock (Linux 5.13+): the kernel refuses writes outside the scratch folder, C code too;
  from ABI 6 also signals to processes outside the build and abstract Unix sockets;
- seccomp: the kernel refuses ``socket()`` (Unix sockets on the file system are outside
  the network namespace), io_uring, and clearing the parent-death signal;
- an audit hook (PEP 578) that turns network access, process spawning and writes
  outside the scratch folder into clear exceptions at the user's line. It is a
  guard rail for Python-level calls, not a sandbox: C code (``torch.save``) is not seen.
  It also refuses signals to the worker or the build's own group, and ``os._exit``, so
  those fail at the user's line instead of ending the build without one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import signal
import struct
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, NoReturn

BLOCKED = "while paramlens builds models"
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_CLONE_NEWPID = 0x20000000
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

_GUARDED = (
    _NETWORK_EVENTS
    | _SPAWN_EVENTS
    | _PATH_EVENTS
    | {"open", "socket.__new__", "os.kill", "os.killpg"}
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


def _unshare() -> tuple[str, str]:
    """New network and PID namespaces: (problem with the network one, with the PID one).

    Inside a user namespace we own, nothing else is needed. A zygote's child cannot nest
    one more user namespace (its user id is not mapped in the zygote's), but it holds the
    capabilities of the zygote's namespace, which is enough for the other two.
    """
    if not sys.platform.startswith("linux"):
        unavailable = "not available on this platform"
        return f"network namespace: {unavailable}", f"PID namespace: {unavailable}"
    libc = _libc()
    errors = []
    for flags in (
        _CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWPID,
        _CLONE_NEWNET | _CLONE_NEWPID,
        _CLONE_NEWUSER | _CLONE_NEWNET,
        _CLONE_NEWPID,
    ):
        if libc.unshare(flags) == 0:
            break
        errors.append(os.strerror(ctypes.get_errno()))
    else:
        flags = 0
    why = errors[0] if errors else ""
    return (
        "" if flags & _CLONE_NEWNET else f"network namespace: unavailable ({why})",
        "" if flags & _CLONE_NEWPID else f"PID namespace: unavailable ({why})",
    )


def _become_init() -> str:
    """Fork; the child, the first process of our new PID namespace, returns and builds.

    When it exits the kernel kills every process left in the namespace, so nothing a build
    starts (a ``setsid`` grandchild, a fork from C that tries to clear its parent-death
    signal) outlives it, and from inside, no process outside the namespace (the worker)
    can even be named. The parent holds nothing, waits, and exits as the child did, so the
    worker sees one process. (The caller cannot build itself: after ``unshare`` it may not
    start threads.)
    """
    alive_r, alive_w = os.pipe()  # the child sees EOF if we die before it is set up
    # SIGCHLD ignored (by code the zygote imported) would let the kernel reap the child
    # for us, and waitpid would find no child: the build's outcome lost
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    with worker_fork():  # a zygote's child still has the zygote's audit hook
        pid = os.fork()
    if pid == 0:
        os.close(alive_w)
        libc = _libc()
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            _real_exit(1)
        if select.select([alive_r], [], [], 0)[0]:  # our parent died before prctl
            _real_exit(1)
        os.close(alive_r)
        return ""
    close_descriptors((alive_w,))
    try:  # blocks in waitpid: no busy wait
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        _lost("the build process's status was lost (no child to wait for)")
    if os.WIFSIGNALED(status):  # end as the child did: killed by the same signal
        number = os.WTERMSIG(status)
        signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {number})
        os.kill(os.getpid(), number)
        _lost(f"the build process was killed by signal {number}, which could not be passed on")
    if not os.WIFEXITED(status):
        _lost(f"the build process ended with wait status {status}")
    _real_exit(os.WEXITSTATUS(status))


def _lost(why: str) -> NoReturn:
    """End the namespace's parent when it cannot end as its child did, saying why on
    stderr (the worker's log); exit code 70 (EX_SOFTWARE)."""
    with contextlib.suppress(OSError):
        os.write(2, f"paramlens: {why}\n".encode())
    _real_exit(70)


def close_descriptors(keep: tuple[int, ...]) -> None:
    """Close every descriptor but ``keep``: a build must not hold other jobs' pipes."""
    try:
        fds = sorted(int(name) for name in os.listdir("/proc/self/fd"))
    except OSError:
        fds = list(range(os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024))
    for fd in fds:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _die_with_parent(parent: int) -> str:
    """Ask Linux to kill us if the worker dies (else an orphan could run to its CPU limit)."""
    if not sys.platform.startswith("linux"):
        return "parent-death signal: not available on this platform"
    libc = _libc()
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return f"parent-death signal: unavailable ({os.strerror(ctypes.get_errno())})"
    # Our parent died before prctl took effect. A parent outside our PID namespace (a
    # zygote) reads as 0; had it died, we would have been handed to the namespace's init.
    if os.getppid() not in (parent, 0):
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
_LANDLOCK_SCOPES = 1 | 2  # LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),  # ABI 4
        ("scoped", ctypes.c_uint64),  # ABI 6
    )


def _landlock_abi() -> int:
    if not sys.platform.startswith("linux"):
        return 0
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    return int(
        libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    )


def _landlock_writes(scratch: str, abi: int) -> str:
    """Only ``scratch`` (and /dev, for /dev/null) may be written; reading stays allowed.

    From ABI 6 the same domain is scoped: no signal to a process outside it (the worker),
    no connection to an abstract Unix socket created outside it.
    """
    if not sys.platform.startswith("linux"):
        return "Landlock: not available on this platform"
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    if abi < 1:
        return f"Landlock: unavailable ({os.strerror(ctypes.get_errno())}): audit hook only"
    handled = _FS_CHANGES | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(handled, 0, _LANDLOCK_SCOPES if abi >= 6 else 0)
    size = ctypes.sizeof(attr) if abi >= 6 else 8  # older kernels know the first field only
    ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
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


# seccomp: the kernel refuses socket creation (the network namespace does not cover Unix
# sockets on the file system), io_uring (which can create sockets too) and clearing the
# parent-death signal. struct seccomp_data: nr at 0, arch at 4, args[i] at 16 + 8 * i.
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_LD_ABS, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ/JGE|K, BPF_RET|K
# machine: (AUDIT_ARCH_*, socket, socketpair, prctl, io_uring_setup, x32 bit or 0)
_SYSCALLS = {
    "x86_64": (0xC000003E, 41, 53, 157, 425, 0x40000000),
    "aarch64": (0xC00000B7, 198, 199, 167, 425, 0),
}


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def _seccomp_program(machine: str) -> bytes | None:
    """The BPF program for ``machine``, or None where we do not know its syscall numbers."""
    if machine not in _SYSCALLS:
        return None
    arch, sock, pair, prctl, io_uring, x32 = _SYSCALLS[machine]
    # (code, k, jump-if-true label, jump-if-false label); labels resolve to offsets below
    program: list[tuple[int, int, str, str]] = [
        (_LD_ABS, 4, "", ""),
        (_JEQ, arch, "", "eperm"),  # another ABI (i386 on x86_64): nothing of it is allowed
        (_LD_ABS, 0, "", ""),
    ]
    if x32:
        program.append((_JGE, x32, "eperm", ""))
    program += [
        (_JEQ, sock, "eacces", ""),
        (_JEQ, pair, "eacces", ""),
        (_JEQ, io_uring, "eperm", ""),
        (_JEQ, prctl, "", "allow"),
        (_LD_ABS, 16, "", ""),
        (_JEQ, _PR_SET_PDEATHSIG, "", "allow"),
        (_LD_ABS, 24, "", ""),  # the signal: setting SIGKILL again is harmless
        (_JEQ, signal.SIGKILL, "allow", "eperm"),
    ]
    labels = {"allow": len(program), "eperm": len(program) + 1, "eacces": len(program) + 2}
    returns = (_RET_ALLOW, _RET_ERRNO | errno.EPERM, _RET_ERRNO | errno.EACCES)
    code = b""
    for at, (op, k, true, false) in enumerate(program):
        jt = labels[true] - at - 1 if true else 0
        jf = labels[false] - at - 1 if false else 0
        code += struct.pack("=HBBI", op, jt, jf, k)
    return code + b"".join(struct.pack("=HBBI", _RET, 0, 0, k) for k in returns)


def _seccomp() -> str:
    """Install the filter (inherited by every process the build starts, not removable)."""
    if not sys.platform.startswith("linux"):
        return "seccomp (no sockets): not available on this platform"
    import platform

    program = _seccomp_program(platform.machine())
    if program is None:
        return f"seccomp (no sockets): no filter for {platform.machine()}"
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"seccomp: no_new_privs refused ({os.strerror(ctypes.get_errno())})"
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        return f"seccomp (no sockets): unavailable ({os.strerror(ctypes.get_errno())})"
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
        if event not in _GUARDED:  # most events: builtins.id alone fires 74,000 times
            return  # while LLaMA-70B is built (its dicts of tensors hash them by id)
        if event == "open":
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            writes = flags & _WRITE_FLAGS or any(c in mode for c in "wax+")
            if writes and (path := self._outside(args[0])) is not None:
                raise PermissionError(f"writing to {path} is blocked {BLOCKED}")
        elif event in _NETWORK_EVENTS:
            raise ConnectionError(f"network access is blocked {BLOCKED}")
        elif event == "socket.__new__":  # the kernel refuses it too (seccomp): say it clearly
            raise ConnectionError(f"creating a socket is blocked {BLOCKED}")
        elif event in ("os.kill", "os.killpg") and len(args) >= 2 and isinstance(args[0], int):
            if _signal_blocked(event, args[0]):
                raise PermissionError(f"sending signal {args[1]} to {args[0]} is blocked {BLOCKED}")
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


def _signal_blocked(event: str, target: int) -> bool:
    """A signal to the worker, to our own process or group, or to every process.

    Processes paramlens started (a zygote's build children, our reaper) can be signalled.
    """
    if target <= 0:  # our own group, or every process we may signal
        return True
    if event == "os.kill":
        return target in (os.getpid(), os.getppid())
    with contextlib.suppress(OSError):
        return target in (os.getpgid(0), os.getpgid(os.getppid()))
    return False


_WORKER_DIR = os.path.dirname(os.path.abspath(__file__))
_real_exit = os._exit


def _exit(status: int) -> NoReturn:
    """``os._exit`` from user code: an error at their line, not a build that vanished."""
    if os.path.dirname(sys._getframe(1).f_code.co_filename) == _WORKER_DIR:
        _real_exit(status)
    raise PermissionError(f"os._exit({status}) is blocked {BLOCKED}")


@contextlib.contextmanager
def memory_capped(memory_mb: int) -> Iterator[None]:
    """A build's memory cap for a while, as :func:`enter` sets it (RLIMIT_AS, the soft
    limit: ``memory_mb`` above what the process maps now), then the one before: a zygote's
    prepared process runs an edit's modules under its jobs' cap, as their children would."""
    import resource

    baseline = _current_address_space()
    limits = resource.getrlimit(resource.RLIMIT_AS)
    soft, hard = limits
    cap = baseline + memory_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    capped = False
    if baseline and sys.platform != "darwin" and (soft == resource.RLIM_INFINITY or cap < soft):
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
            capped = True
    try:
        yield
    finally:
        if capped:
            resource.setrlimit(resource.RLIMIT_AS, limits)


def exit_now(code: int) -> NoReturn:
    """End this process at once (the real ``os._exit``), and our PID namespace with it."""
    _real_exit(code)


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
    no_network, no_pid_namespace = _unshare()
    layer("network namespace (no network)", no_network)
    layer("dies with the worker (PR_SET_PDEATHSIG)", _die_with_parent(parent))
    layer(
        "PID namespace (nothing the build starts outlives it)", no_pid_namespace or _become_init()
    )

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

    abi = _landlock_abi()
    landlock = _landlock_writes(scratch, abi)
    layer("Landlock (kernel refuses writes outside the scratch folder)", landlock)
    if not landlock:
        scopes = "" if abi >= 6 else f"Landlock scopes: need ABI 6, the kernel has {abi}"
        layer("Landlock scopes (no signals to the worker, no abstract Unix sockets)", scopes)
    layer("seccomp (kernel refuses sockets and io_uring)", _seccomp())

    os.environ["TMPDIR"] = scratch
    tempfile.tempdir = scratch
    sys.dont_write_bytecode = True
    sys.addaudithook(_Guard(scratch))
    os._exit = _exit
    layer("audit hook (network, processes, signals, writes outside the scratch folder)", "")
    return active, notes
