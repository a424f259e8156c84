"""Hostile builds against the worker: sockets, the result pipe, signals, orphans, crashes.

Each test drives a real worker (``WorkerClient``) over ``fixtures/hostile/escapes.py`` or a
module written for it, and checks both what is reported and that the worker keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from paramlens.engine.worker_client import WorkerClient
from paramlens.worker.protocol import ModelResult

from tests.conftest import FIXTURES
from tests.worker.test_worker import SEED, _eventually_logged, job

ESCAPES = FIXTURES / "hostile/escapes.py"
LINUX = sys.platform.startswith("linux")
pytestmark = pytest.mark.skipif(not LINUX, reason="the kernel layers are Linux-only")


def line_of(text: str, path: Path = ESCAPES, after: str = "") -> int:
    """1-based line of the first ``text`` in ``path`` (after the line containing ``after``)."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i, line in enumerate(lines) if i >= start and text in line) + 1


def escape(name: str) -> tuple[str, int]:
    return name, line_of(f"class {name}(")


async def build_one(worker: WorkerClient, name: str, **extra: object) -> ModelResult:
    result = await asyncio.wait_for(worker.build(job(ESCAPES, escape(name), **extra)), 60)
    [model] = result.models
    return model


async def still_serving(worker: WorkerClient) -> None:
    result = await asyncio.wait_for(worker.build(job(SEED, ("CNN", 24))), 60)
    assert result.models[0].total_params == 1_199_882


@pytest.fixture
async def worker():  # type: ignore[no-untyped-def]
    logged: list[str] = []
    client = WorkerClient(sys.executable, logged.append)
    client.logged = logged  # type: ignore[attr-defined]
    yield client
    await client.stop()


# -- sockets --------------------------------------------------------------------


async def test_a_unix_socket_on_the_host_cannot_be_reached(
    worker: WorkerClient, tmp_path: Path
) -> None:
    server = socket.socket(socket.AF_UNIX)
    path = tmp_path / "host.sock"
    server.bind(str(path))
    server.listen()
    server.setblocking(False)
    module = tmp_path / "sockets.py"
    module.write_text(
        "import ctypes, os, socket, struct\nfrom torch import nn\n\n\n"
        "class FromC(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        libc = ctypes.CDLL(None, use_errno=True)\n"
        "        fd = libc.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)\n"
        "        if fd < 0:\n"
        "            raise OSError(ctypes.get_errno(), 'socket: ' + os.strerror(ctypes.get_errno()))\n"
        f"        addr = struct.pack('H108s', socket.AF_UNIX, {str(path).encode()!r})\n"
        "        if libc.connect(fd, addr, len(addr)) != 0:\n"
        "            raise OSError(ctypes.get_errno(), 'connect: ' + os.strerror(ctypes.get_errno()))\n"
        "        raise RuntimeError('connected to the host socket')\n\n\n"
        "class FromPython(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        f"        socket.socket(socket.AF_UNIX).connect({str(path)!r})\n"
    )
    classes = (("FromC", line_of("class FromC", module)), ("FromPython", line_of("FromPy", module)))
    result = await worker.build(job(module, *classes))
    from_c, from_python = result.models
    assert from_c.error is not None and from_python.error is not None
    assert "socket: Permission denied" in from_c.error.message, from_c.error
    assert from_c.error.line == line_of("'socket: '", module)
    assert "creating a socket is blocked" in from_python.error.message
    assert from_python.error.line == line_of(").connect(", module)
    assert from_python.error.kind == "blocked"
    with pytest.raises(BlockingIOError):
        server.accept()
    assert any("seccomp" in layer for layer in result.isolation), result.isolation
    server.close()


# -- the result channel ---------------------------------------------------------


async def test_a_build_holds_no_other_jobs_pipe(worker: WorkerClient) -> None:
    await worker.start()
    slow = asyncio.create_task(worker.build(job(ESCAPES, escape("Orphan"), timeout_s=30)))
    await _eventually_logged(worker.logged, "ORPHAN ")  # type: ignore[attr-defined]
    model = await build_one(worker, "Descriptors")
    assert model.error is not None
    assert model.error.message == "ValueError: pipes=1"  # its own result pipe only
    slow.cancel()


@pytest.mark.parametrize("name", ["Garbage", "WrongTypes", "Forger"])
async def test_what_a_build_sends_is_checked(worker: WorkerClient, name: str) -> None:
    await worker.start()
    started = time.monotonic()
    result = await asyncio.wait_for(
        worker.build(job(ESCAPES, escape(name), escape("WellBehaved"))), 60
    )
    assert time.monotonic() - started < 4  # killed at once, not after its 5 s sleep
    assert [m.name for m in result.models] == [name, "WellBehaved"]  # nothing forged
    for model in result.models:
        assert model.error is not None and model.error.kind == "crash"
        assert "sent invalid data" in model.error.message
    await still_serving(worker)


# -- signals and orphans ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "marker"),
    [
        ("KillWorker", "os.kill("),
        ("KillWorkerFromC", "raise PermissionError"),
        ("KillParent", "os.kill("),
    ],
)
async def test_a_build_cannot_kill_the_worker(worker: WorkerClient, name: str, marker: str) -> None:
    model = await build_one(worker, name)
    assert model.error is not None  # not found in the build's PID namespace, or refused
    assert model.error.line == line_of(marker, after=f"class {name}("), model.error
    await still_serving(worker)


async def test_an_orphan_that_cleared_its_death_signal_dies_with_the_worker(
    worker: WorkerClient,
) -> None:
    await worker.start()
    pending = asyncio.create_task(worker.build(job(ESCAPES, escape("Orphan"), timeout_s=30)))
    await _eventually_logged(worker.logged, "ORPHAN ")  # type: ignore[attr-defined]
    assert _alive("escorphan")
    assert worker._process is not None
    worker._process.kill()
    with pytest.raises(Exception, match="the paramlens worker died"):
        await asyncio.wait_for(pending, 10)
    for _ in range(100):
        if not _alive("escorphan"):
            break
        await asyncio.sleep(0.05)
    assert not _alive("escorphan")


async def test_processes_forked_in_c_do_not_outlive_the_build(worker: WorkerClient) -> None:
    await worker.start()
    started = time.monotonic()
    model = await build_one(worker, "ForksFromC", timeout_s=20)
    assert time.monotonic() - started < 10  # not at the deadline, nor 60 s later
    assert model.error is None and model.total_params == 6
    for _ in range(100):
        if not _alive("escfork"):
            break
        await asyncio.sleep(0.05)
    assert not _alive("escfork")


def _alive(name: str) -> list[int]:
    """Live processes a build started, which renamed themselves ``name`` to be found."""
    alive = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
                state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
            except OSError:
                continue
            if comm == name and state != "Z":
                alive.append(int(entry))
    return alive


# -- the right line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "marker", "kind", "text"),
    [
        ("Exits", "os._exit(3)", "blocked", "os._exit(3) is blocked"),
        ("KillsGroup", "os.killpg(0", "blocked", "is blocked"),
        ("CStackOverflow", "return repr(self)", "crash", "SIGSEGV"),
        ("UnprintableError", "raise _Unprintable()", "exception", "_Unprintable"),
    ],
)
async def test_a_failure_is_reported_at_the_users_line(
    worker: WorkerClient, name: str, marker: str, kind: str, text: str
) -> None:
    model = await build_one(worker, name)
    assert model.error is not None
    assert (model.error.kind, model.error.line) == (kind, line_of(marker)), model.error
    assert text in model.error.message
    await still_serving(worker)


async def test_a_monkeypatched_layer_is_still_measured(worker: WorkerClient) -> None:
    model = await build_one(worker, "Monkeypatched")
    assert model.error is None, model.error
    assert model.total_params == 12
    [layer] = model.layers
    assert layer.describe == "Linear"


def test_the_socket_filter_is_a_valid_program() -> None:
    from paramlens.worker import sandbox

    for machine in ("x86_64", "aarch64"):
        program = sandbox._seccomp_program(machine)
        assert program is not None and len(program) % 8 == 0
    assert sandbox._seccomp_program("mips") is None


def test_the_namespace_parent_ends_as_its_build_did_with_sigchld_ignored() -> None:
    """Code a zygote imported may ignore SIGCHLD (the kernel then reaps children itself):
    the PID namespace's parent must still learn how its build ended, not exit 70."""
    from paramlens.worker import sandbox

    pid = os.fork()
    if pid == 0:  # the job's child: SIGCHLD ignored, then the namespace's fork
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_IGN)
            sandbox._become_init()
            os._exit(7)  # the build (the namespace's first process) ends with 7
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7


def test_a_memory_cap_held_for_a_while_then_lifted() -> None:
    # a zygote's prepared process runs an edit's modules under its jobs' cap, as their
    # children would, then forks those children with its own cap back
    code = (
        "from paramlens.worker.sandbox import memory_capped\n"
        "with memory_capped(64):\n"
        "    try:\n"
        "        bytearray(512 * 2**20)\n"
        "        print('allocated')\n"
        "    except MemoryError:\n"
        "        print('capped')\n"
        "print(len(bytearray(512 * 2**20)) // 2**20)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["capped", "512"], out
