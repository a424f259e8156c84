"""Fairness (issue 22, item 2): a file whose builds hang until their timeout, edited again and
again, holds at most one build in the worker at a time (each edit cancels the build before),
and another file's lenses come while that build still runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import SERVER, eventually, initialize, lens_titles, open_file

SLOW = """import time

from torch import nn


class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        time.sleep(600)  # until the timeout, every time
        self.fc = nn.Linear(2, 2)
# edit 0
"""
EDITS = 5
JOB = re.compile(r"job (\d+) (sent: (\S+),|done|cancelled|lost with the worker)")


@pytest_lsp.fixture(config=SERVER)
async def slow_client(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'fair'\n")
    (tmp_path / "slow.py").write_text(SLOW)
    shutil.copy(FIXTURES / "recipe/models.py", tmp_path / "recipe.py")
    # a timeout no loaded machine reaches before the other file's lenses: the slow file's
    # build is still running when they come, whatever the machine's speed
    settings = {"timeout": 30, "analyzeOnChange": True, "debounceMs": 50}
    await initialize(lsp_client, tmp_path, settings=settings)
    lsp_client.tmp = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def slow_builds(
    client: LanguageClient, files: tuple[str, ...] = ("slow.py",)
) -> tuple[list[int], int, int]:
    """From the server's log of its worker client: the jobs of ``files`` that were sent, in
    order, the most of them the worker had at once (sent, neither done nor cancelled yet),
    and how many it has now."""
    in_worker: set[int] = set()
    sent, most = [], 0
    for message in client.log_messages:
        for job, what, file in JOB.findall(message.message):
            if what.startswith("sent"):
                if file in files:
                    sent.append(int(job))
                    in_worker.add(int(job))
            else:
                in_worker.discard(int(job))
            most = max(most, len(in_worker))
    return sent, most, len(in_worker)


@pytest.mark.timeout(120)
async def test_a_hanging_file_edited_again_and_again_holds_one_build_and_delays_no_other(
    slow_client: LanguageClient,
) -> None:
    client = slow_client
    tmp: Path = client.tmp  # type: ignore[attr-defined]
    slow = open_file(client, tmp / "slow.py")

    async def builds_sent(count: int) -> list[int] | None:
        sent, _, _ = slow_builds(client)
        return sent if len(sent) >= count else None

    await eventually(lambda: builds_sent(1))
    for edit in range(1, EDITS + 1):  # each edit once the build before is in the worker
        text = SLOW.replace("# edit 0", f"# edit {edit}")
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(version=edit + 1, uri=slow),
                [lsp.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        await eventually(lambda edit=edit: builds_sent(edit + 1))  # type: ignore[misc]

    recipe = open_file(client, tmp / "recipe.py")
    shown = await lens_titles(client, recipe)
    assert shown[11] == "Linear(784 -> 512) · 401,920 · → [1, 512]"
    sent, most, now = slow_builds(client)
    # the slow file's newest build still runs: nothing came back for it yet
    assert now == 1
    assert not client.diagnostics.get(slow)
    assert len(sent) >= EDITS + 1
    assert most == 1, [m.message for m in client.log_messages if "job " in m.message]


HANGS = """import time

from torch import nn


class Hangs(nn.Module):
    def __init__(self, recipe):  # no example value for it: measured through its users
        super().__init__()
        time.sleep(600)
        self.fc = nn.Linear(2, 2)
"""
USER = """from torch import nn

from hangs import Hangs


class Uses{name}(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Hangs(list("{name}"))  # no literal: not a call site to copy
"""
USERS = ("hangs.py", "user_a.py", "user_b.py")


@pytest_lsp.fixture(config=SERVER)
async def users_client(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'fair'\n")
    (tmp_path / "hangs.py").write_text(HANGS)
    for name in "ab":
        (tmp_path / f"user_{name}.py").write_text(USER.format(name=name.upper()))
    shutil.copy(FIXTURES / "recipe/models.py", tmp_path / "recipe.py")
    await initialize(lsp_client, tmp_path, settings={"timeout": 30})
    lsp_client.tmp = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


@pytest.mark.timeout(120)
async def test_a_file_measured_through_hanging_users_holds_one_build_at_a_time(
    users_client: LanguageClient,
) -> None:
    """A class that needs arguments is measured through the files that use it: each of
    those builds hangs here, and they are built one at a time, not all at once (two of them
    took both of this machine's build slots, and the recipe waited for their timeout)."""
    client = users_client
    tmp: Path = client.tmp  # type: ignore[attr-defined]
    open_file(client, tmp / "hangs.py")

    async def users_building() -> list[int] | None:
        sent, _, _ = slow_builds(client, USERS[1:])
        return sent or None

    await eventually(users_building)
    recipe = open_file(client, tmp / "recipe.py")
    shown = await lens_titles(client, recipe)
    assert shown[11] == "Linear(784 -> 512) · 401,920 · → [1, 512]"
    _, most, now = slow_builds(client, USERS)
    assert most == 1, [m.message for m in client.log_messages if "job " in m.message]
    assert now == 1  # a user of Hangs is still being built: the recipe did not wait for it
