"""Issue 20 in the editor: a README's later example that switches on a block is listed on
its class's lens as a configuration, after the class's own figures (it is built later),
and the block it builds says where it was measured; JSON configs are listed on their
class, and a JSON config that does not parse is a diagnostic on the class."""

from __future__ import annotations

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import SERVER, eventually, initialize, lens_titles, open_file

DOCEX2 = FIXTURES / "docex2"
pytestmark = pytest.mark.timeout(120)


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    await initialize(lsp_client, DOCEX2)
    yield
    await lsp_client.shutdown_session()


async def test_later_readme_examples_and_json_configs_on_lenses(client: LanguageClient) -> None:
    tower = open_file(client, DOCEX2 / "towers/tower.py")

    async def gated() -> dict[int, str] | None:
        shown = await lens_titles(client, tower)
        return shown if "README.md:18 1,088" in shown.get(13, "") else None

    shown = await eventually(gated)
    assert shown[13].startswith("Tower · 544 params")
    assert "· as in the example at README.md:10 ·" in shown[13]
    assert shown[4] == "Gate · 272 each · 2 in README.md:18"

    clip = open_file(client, DOCEX2 / "towers/clip.py")
    shown = await lens_titles(client, clip)
    assert shown[4] == (
        "Clip · towers/model_configs/small.json 2,088"
        " · towers/model_configs/small-quickgelu.json 2,088"
        " · towers/model_configs/wide.json 12,832"
    )

    async def diagnostics() -> list[lsp.Diagnostic] | None:
        return [d for d in client.diagnostics.get(clip, []) if d.code == "syntax"] or None

    [found] = await eventually(diagnostics)
    assert found.range.start.line == 3  # the class line
    assert found.message.startswith("towers/model_configs/broken.json")
    assert "JSON error: Expecting ',' delimiter" in found.message
    assert found.related_information is not None
    related = found.related_information[0].location
    broken = DOCEX2 / "towers/model_configs/broken.json"
    assert related.uri == broken.resolve().as_uri() and related.range.start.line == 2
