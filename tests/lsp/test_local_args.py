"""Issue 20 in the editor: a class built by a call whose arguments are local values (a
test's first parametrize case, a ``__main__`` block's loop) says so on its lens, naming
the test file's line."""

from __future__ import annotations

import pytest
import pytest_lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import SERVER, initialize, lens_titles, open_file
from tests.lsp.test_lenses_and_hovers import hover

LOCAL = FIXTURES / "localargs"
pytestmark = pytest.mark.timeout(120)


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The editor opened on the fixture project (its paths relative to it)."""
    await initialize(lsp_client, LOCAL)
    yield
    await lsp_client.shutdown_session()


async def test_lenses_name_the_call_and_its_case(client: LanguageClient) -> None:
    doc = open_file(client, LOCAL / "tinyvit/blocks.py")
    shown = await lens_titles(client, doc)
    assert shown[7].startswith("FeedForward · 4,776 params")
    assert "· as called at tests/test_blocks.py:17 (first parametrize case) ·" in shown[7]
    assert "· as called at tests/test_blocks.py:24 (first parameterized case) ·" in shown[18]
    assert "· as called at tinyvit/blocks.py:75 (first loop value) ·" in shown[51]
    text = await hover(client, doc, 51)
    assert (
        "Built with `Gate(48, groups=2, heads=4)`, as called at tinyvit/blocks.py:75"
        " (first loop value)." in text
    )
