"""Issue 20 in the editor: classes that only the documentation builds (a README code block,
a docstring's ``>>>`` example) have lenses and hovers saying which example built them."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import SERVER, eventually, initialize, lens_titles, open_file
from tests.lsp.test_lenses_and_hovers import hover

DOCEX = FIXTURES / "docex"
pytestmark = pytest.mark.timeout(120)


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The editor opened on the fixture project (its paths relative to it)."""
    await initialize(lsp_client, DOCEX)
    yield
    await lsp_client.shutdown_session()


async def test_readme_and_docstring_examples_on_lenses_and_hovers(client: LanguageClient) -> None:
    stack = open_file(client, DOCEX / "tinynet/stack.py")
    shown = await lens_titles(client, stack)
    assert shown[20].startswith("Wrapper · 19,780 params")
    assert "· as in the example at README.md:28 ·" in shown[20]
    assert "· as in the example at README.md:31 ·" in shown[4]  # Stack, nested in it
    text = await hover(client, stack, 20)
    assert (
        "Built with `Wrapper(num_tokens=100, max_len=16, layers=Stack(dim=32, depth=3))`,"
        " as in the example at README.md:28." in text
    )
    mixer = open_file(client, DOCEX / "tinynet/mixer.py")
    shown = await lens_titles(client, mixer)
    assert shown[10].startswith("Mixer · 672 params")
    assert "· as in the example at tinynet/mixer.py:17 (docstring) ·" in shown[10]


@pytest_lsp.fixture(config=SERVER)
async def copied(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The editor opened on a copy of the fixture project, whose README the test edits."""
    folder = tmp_path_factory.mktemp("docex") / "docex"
    shutil.copytree(DOCEX, folder)
    await initialize(lsp_client, folder)
    lsp_client.folder = folder  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_a_readme_changed_on_disk_updates_the_lenses(copied: LanguageClient) -> None:
    client = copied
    folder: Path = client.folder  # type: ignore[attr-defined]
    stack = open_file(client, folder / "tinynet/stack.py")
    shown = await lens_titles(client, stack)
    assert shown[20].startswith("Wrapper · 19,780 params")
    # the server asked to hear of such files changing (VS Code's capabilities allow it)
    [params] = await eventually(lambda: asyncio.sleep(0, client.registered))  # type: ignore[attr-defined]
    [registration] = params.registrations
    assert registration.method == lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES
    readme = folder / "README.md"
    readme.write_text(readme.read_text().replace("num_tokens = 100", "num_tokens = 200"))
    client.workspace_did_change_watched_files(
        lsp.DidChangeWatchedFilesParams(
            [lsp.FileEvent(readme.as_uri(), lsp.FileChangeType.Changed)]
        )
    )

    async def updated() -> str | None:
        title = (await lens_titles(client, stack)).get(20, "")
        return title if "stale" not in title and "19,780" not in title else None

    # 100 more tokens of embedding (32 wide) and of the output head (32 -> tokens, + bias)
    assert (await eventually(updated)).startswith("Wrapper · 26,280 params")
