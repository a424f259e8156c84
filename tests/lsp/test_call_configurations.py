"""Issue 20 in the editor: the tests' calls of a class that switch on a block are listed on
its class's lens as configurations, after the class's own figures (built from the call in
the project's code), and the blocks they build say where they were measured."""

from __future__ import annotations

import pytest
import pytest_lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import SERVER, eventually, initialize, lens_titles, open_file

CALLCONFIGS = FIXTURES / "callconfigs"
pytestmark = pytest.mark.timeout(120)


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    await initialize(lsp_client, CALLCONFIGS)
    yield
    await lsp_client.shutdown_session()


async def test_calls_in_tests_that_switch_blocks_on_are_on_the_lenses(
    client: LanguageClient,
) -> None:
    stack = open_file(client, CALLCONFIGS / "stacks/stack.py")

    async def configured() -> dict[int, str] | None:
        shown = await lens_titles(client, stack)
        return shown if "tests/test_stack.py:22 73" in shown.get(23, "") else None

    shown = await eventually(configured)
    assert shown[23].startswith("Stack · 16,768 params")
    assert "· as called at train_stack.py:7 ·" in shown[23]
    assert shown[23].endswith("· tests/test_stack.py:12 304 · tests/test_stack.py:22 73")
    assert shown[5] == "Gate · 72 each · 2 in tests/test_stack.py:12"
    assert shown[14] == "ScaleNorm · 1 each · 1 in tests/test_stack.py:22"
