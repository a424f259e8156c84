"""Bad input in the editor: diagnostics on the right line, a responsive server, no leftovers."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import SERVER, eventually, initialize, lens_titles, open_file

HOSTILE = FIXTURES / "hostile/hostile.py"


def worker_pids(server_pid: int) -> list[int]:
    """Live child processes of the server running the paramlens worker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == server_pid and state != "Z" and b"paramlens_worker" in cmdline:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_each_failure_is_one_diagnostic_on_the_users_line(client: LanguageClient) -> None:
    doc = open_file(client, HOSTILE)

    async def all_diagnostics() -> list[lsp.Diagnostic] | None:
        found = client.diagnostics.get(doc, [])
        return list(found) if len(found) == 8 else None

    found = await eventually(all_diagnostics, timeout=90)
    by_line = {d.range.start.line + 1: d for d in found}
    expected = {
        16: ("timeout", lsp.DiagnosticSeverity.Warning, "BusyLoop cannot be built: TimeoutError"),
        23: (
            "blocked",
            lsp.DiagnosticSeverity.Warning,
            "ConnectionError: network access is blocked",
        ),
        29: ("blocked", lsp.DiagnosticSeverity.Warning, "PermissionError: writing to"),
        36: (
            "blocked",
            lsp.DiagnosticSeverity.Warning,
            "PermissionError: starting processes is blocked",
        ),
        42: ("memory", lsp.DiagnosticSeverity.Warning, "MemoryError"),
        48: (
            "exception",
            lsp.DiagnosticSeverity.Error,
            "Raises cannot be built: ValueError: bad hyper-parameters",
        ),
    }
    for line, (code, severity, text) in expected.items():
        diagnostic = by_line[line]
        assert (diagnostic.code, diagnostic.severity) == (code, severity), diagnostic
        assert text in diagnostic.message, diagnostic.message
        assert diagnostic.source == "paramlens"
    assert {57, 58} & set(by_line)  # Stubborn: killed, reported on its loop
    shown = await lens_titles(client, doc)
    assert shown[64] == "Linear(10 -> 10) · 110"


async def test_needs_arguments_is_information_with_the_fix(client: LanguageClient) -> None:
    doc = open_file(client, FIXTURES / "needs_args/model.py")

    async def info() -> list[lsp.Diagnostic] | None:
        return list(client.diagnostics.get(doc, [])) or None

    [diagnostic] = await eventually(info)
    assert diagnostic.severity == lsp.DiagnosticSeverity.Information
    assert diagnostic.range.start.line + 1 == 30
    assert 'Unknown = "Unknown(tokenizer=..., width=...)"' in diagnostic.message
    shown = await lens_titles(client, doc)
    assert shown[30] == "Unknown · needs constructor arguments (see problems)"


async def test_hovers_answer_while_a_build_hangs(client: LanguageClient) -> None:
    seed = open_file(client, FIXTURES / "recipe/models.py")
    await lens_titles(client, seed)
    hostile = open_file(client, HOSTILE)  # BusyLoop hangs for the whole 3 s timeout
    await asyncio.sleep(0.3)
    answers = []
    for _ in range(20):
        result = await client.text_document_hover_async(
            lsp.HoverParams(lsp.TextDocumentIdentifier(seed), lsp.Position(10, 14))
        )
        assert result is not None
        answers.append(result)
    assert not client.diagnostics.get(hostile)  # the hanging build is still running
    assert "[512, 784]" in answers[-1].contents.value  # type: ignore[union-attr]


async def test_a_killed_worker_is_restarted(client: LanguageClient) -> None:
    doc = open_file(client, FIXTURES / "recipe/models.py")
    await lens_titles(client, doc)
    server = client._server
    assert server is not None
    [worker] = worker_pids(server.pid)
    os.kill(worker, signal.SIGKILL)
    await eventually(lambda: asyncio.sleep(0, result=not alive(worker)))
    other = open_file(client, FIXTURES / "cnn/model.py")
    shown = await lens_titles(client, other)
    assert shown[22] == "Linear(64 -> 10) · 650 · → [1, 10]"
    assert worker_pids(server.pid) and worker_pids(server.pid) != [worker]


@pytest_lsp.fixture(config=SERVER)
async def fresh_client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await initialize(lsp_client, FIXTURES / "recipe", FIXTURES / "pkgws")
    yield


async def test_multi_root_then_shutdown_leaves_no_worker(fresh_client: LanguageClient) -> None:
    client = fresh_client
    tower = open_file(client, FIXTURES / "pkgws/mypkg/models.py")  # relative imports: its own root
    seed = open_file(client, FIXTURES / "recipe/frozen.py")
    assert (await lens_titles(client, tower))[16] == "4 x Block · 67,328"
    assert (await lens_titles(client, seed))[6].startswith(
        "FrozenFirstLayer · 669,706 params · 268,298 trainable"
    )
    server = client._server
    assert server is not None
    workers = worker_pids(server.pid)
    assert workers
    await client.shutdown_session()
    assert await asyncio.wait_for(server.wait(), 10) == 0
    await eventually(
        lambda: asyncio.sleep(0, result=not any(alive(p) for p in workers)), timeout=10
    )


SLOW = (
    "import sys\nimport time\n\nfrom torch import nn\n\n\n"
    "class Slow(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        print('BUILDING Slow', file=sys.stderr, flush=True)\n"
    "        time.sleep(60)\n"
)
FAST = (
    "from torch import nn\n\n\n"
    "class Fast(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.fc = nn.Linear(2, 3)\n"
)


@pytest_lsp.fixture(config=SERVER)
async def patient_client(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "slow.py").write_text(SLOW)
    (tmp_path / "fast.py").write_text(FAST)
    await initialize(lsp_client, tmp_path, settings={"timeout": 60})
    lsp_client.root = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def logged_worker_pids(client: LanguageClient) -> list[int]:
    found = [re.search(r"^worker ready: .* pid (\d+)$", m.message) for m in client.log_messages]
    return [int(m.group(1)) for m in found if m]


async def test_a_worker_killed_mid_build_names_the_class_and_restarts(
    patient_client: LanguageClient,
) -> None:
    client = patient_client
    root: Path = client.root  # type: ignore[attr-defined]
    fast = open_file(client, root / "fast.py")
    assert (await lens_titles(client, fast))[7] == "Linear(2 -> 3) · 9"
    slow = open_file(client, root / "slow.py")
    await eventually(
        lambda: asyncio.sleep(
            0, result=any("BUILDING Slow" in m.message for m in client.log_messages)
        )
    )
    [worker] = logged_worker_pids(client)
    await asyncio.sleep(0.5)  # the worker relays which class its child started
    os.kill(worker, signal.SIGKILL)

    async def died() -> list[lsp.Diagnostic] | None:
        return list(client.diagnostics.get(slow, [])) or None

    [diagnostic] = await eventually(died, timeout=30)
    assert diagnostic.range.start.line + 1 == 7  # class Slow
    assert diagnostic.code == "crash"
    assert (
        "the paramlens worker died while building Slow in slow.py (killed by signal 9)"
        in diagnostic.message
    )
    statuses = client.status  # type: ignore[attr-defined]
    errors = [s.message for s in statuses if s.state == "error"]
    assert any("died while building Slow" in e for e in errors), errors
    assert not any("paramlens.python" in m.message for m in client.messages)
    # a new worker at once, and the other file's lenses come back fresh without a save
    restarted = await eventually(
        lambda: asyncio.sleep(0, result=[p for p in logged_worker_pids(client) if p != worker])
    )
    assert alive(restarted[0])
    assert (await lens_titles(client, fast))[7] == "Linear(2 -> 3) · 9"
