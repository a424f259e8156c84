"""Layers that models import through a package re-exporting them (timm's models write
``from timm.layers import SwiGLU``): the layer's lens shows the instances those models build."""

from __future__ import annotations

import pytest
import pytest_lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import SERVER, eventually, initialize, lens_titles, open_file

PROJECT = FIXTURES / "reexport"
pytestmark = pytest.mark.timeout(120)


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await initialize(lsp_client, PROJECT)
    yield
    await lsp_client.shutdown_session()


async def test_a_re_exported_layer_lens_counts_its_instances_in_the_models(
    client: LanguageClient,
) -> None:
    doc = open_file(client, PROJECT / "netpkg/layers/mlp.py")

    async def with_instances() -> dict[int, str] | None:
        shown = await lens_titles(client, doc)
        return shown if "in GluHead" in shown.get(6, "") else None

    shown = await eventually(with_instances)
    # GluMlp(16, 16) in GluHead; two GluMlp(48, 192) in MixerNet: the other size
    assert shown[6] == "GluMlp · 816 each · 1 in GluHead · 1 other size · in 1 more model"
    # its lines: the sizes those models built, not the example build's
    assert shown[9] == (
        "Linear(16 -> 32) · 544 | 2 x Linear(48 -> 384) · 37,632"
        " · → [1, 32] | [1, 384] \N{MULTIPLICATION SIGN}2"
    )
