"""Issue 20 in the editor: classes that only the documentation builds (a README code block,
a docstring's ``>>>`` example) have lenses and hovers saying which example built them."""

from __future__ import annotations

import pytest
import pytest_lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import SERVER, initialize, lens_titles, open_file
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
