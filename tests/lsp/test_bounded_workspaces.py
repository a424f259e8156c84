"""Bounded workspaces (issue 22): an editor opened at ``/``, a loose file in a folder full of
packages and a folder too big to read whole each get their lenses, say what they left
unread, and never keep another workspace's file waiting."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import SERVER, eventually, initialize, lens_titles, open_file

SEED = FIXTURES / "recipe/models.py"
SMALL = "from torch import nn\n\n\nclass Small(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 2)\n"


def packages(folder: Path, count: int) -> None:
    """``folder`` with ``small.py`` and ``count`` subfolders of one module each."""
    folder.mkdir()
    (folder / "small.py").write_text(SMALL)
    for number in range(count):
        (folder / f"pkg{number}").mkdir()
        (folder / f"pkg{number}" / "mod.py").write_text(f"X = {number}\n")


@pytest_lsp.fixture(config=SERVER)
async def wide_client(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    packages(tmp_path / "loose", 60)  # no project marker above it: a loose file's folder
    packages(tmp_path / "big", 250)  # a workspace folder of 251 files, 200 read
    # the first folder is "/" (also the root URI): never read, even to its budget; fixtures/
    # (about 100 Python files and notebooks) is read whole
    await initialize(lsp_client, Path("/"), tmp_path / "big", FIXTURES, settings={"maxFiles": 200})
    lsp_client.tmp = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


@pytest.mark.timeout(180)
async def test_wide_and_loose_roots_are_bounded_and_other_workspaces_get_their_lenses(
    wide_client: LanguageClient,
) -> None:
    client = wide_client
    tmp: Path = client.tmp  # type: ignore[attr-defined]
    loose = open_file(client, tmp / "loose" / "small.py")
    big = open_file(client, tmp / "big" / "small.py")
    seed = open_file(client, SEED)
    shown = await lens_titles(client, seed)  # exact, as in any session
    assert shown[11] == "Linear(784 -> 512) · 401,920 · → [1, 512]"
    assert shown[36] == "Linear(9216 -> 128) · 1,179,776 · → [1, 128]"
    # the loose file: its own folder only (all of "/" was the workspace folder holding it)
    assert (await lens_titles(client, loose))[7] == "Linear(4 -> 2) · 10"
    assert (await lens_titles(client, big))[7] == "Linear(4 -> 2) · 10"

    def cut_short() -> list[str]:
        return [m.message for m in client.messages if "stopped" in m.message]

    async def said() -> list[str] | None:
        return cut_short() or None

    await eventually(said)
    assert cut_short() == [
        f"paramlens read the first 200 Python files under {tmp / 'big'} and stopped; set "
        "max-files in [tool.paramlens] or add a pyproject.toml to mark the project"
    ]
    assert [m.type for m in client.messages if "stopped" in m.message] == [lsp.MessageType.Warning]
