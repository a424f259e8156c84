"""Issue 20 item 6 in the editor: the lenses and hovers of lines show what builds with real
arguments made there, by size; an example build only where nothing real reached a line,
saying so."""

from __future__ import annotations

import pytest
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import inlay_hints, label, lens_titles, open_file
from tests.lsp.test_lenses_and_hovers import hover

pytestmark = pytest.mark.timeout(120)


async def test_line_lenses_and_hovers_show_the_real_builds(client: LanguageClient) -> None:
    doc = open_file(client, FIXTURES / "resnet_lines/model.py")
    shown = await lens_titles(client, doc)
    assert shown[16] == "Residual · 4,672 each · 1 in TinyResNet · 1 other size"
    # the helper's line and Residual's: TinyResNet's instances, not Residual(channels=3)'s
    assert shown[11] == (
        "Conv2d(3 -> 16, 3x3) · 432 | 2 x Conv2d(16 -> 16, 3x3) · 4,608 | +2 more sizes"
        " · → [1, 16, 224, 224] \N{MULTIPLICATION SIGN}3 | [1, 32, 224, 224] \N{MULTIPLICATION SIGN}7"
    )
    assert shown[19] == "ModuleList · 4,672 | 3 x ModuleList · 55,680"
    # a class no model uses: its example build, and the line says so
    assert shown[45] == "Linear(3 -> 3) · 12 · → [1, 3] · example sizes"
    assert [line for line, title in shown.items() if "example sizes" in title] == [45]
    text = await hover(client, doc, 11)
    assert text.startswith("**10 x Conv2d**: 64,944 parameters (10 instances of 4 sizes)")
    assert "Measured inside TinyResNet." in text
    assert "| `Conv2d(32 -> 32, 3x3)` | 6 | 9,216 |" in text
    text = await hover(client, doc, 19)
    assert "of Residual" not in text  # no share of the example build's total
    text = await hover(client, doc, 45)
    assert "*example sizes: measured in Gate built with example arguments;" in text
    # the shape forward() gave in Gate: only its example build ran it, and the hint says so
    [hint] = [h for (line, _), h in (await inlay_hints(client, doc, 48, 49)).items() if line == 48]
    assert label(hint) == ": [1, 3]"
    assert isinstance(hint.tooltip, str)
    assert hint.tooltip.startswith("Gate(channels=3) (example sizes) with torch.randn(1, 3)")


async def test_a_line_two_models_build_shows_both_sizes_and_says_where(
    client: LanguageClient,
) -> None:
    doc = open_file(client, FIXTURES / "resnet_lines/two_models.py")
    shown = await lens_titles(client, doc)
    assert shown[12] == (
        "Linear(512 -> 128) · 65,664 | 2 x Linear(64 -> 32) · 4,160"
        " · → [1, 128] | [1, 32] \N{MULTIPLICATION SIGN}2"
    )
    text = await hover(client, doc, 12)
    assert text.startswith("**Linear**: 2 sizes, as built in MLPBlock, SmallNet")
    assert "| `Linear(512 -> 128)` | 1 | 65,664 | MLPBlock |" in text
    assert "| `Linear(64 -> 32)` | 2 | 2,080 | SmallNet |" in text
    # the block's own figures say where its arguments came from (issue 20, item 7)
    text = await hover(client, doc, 8)
    assert "Built with `MLPBlock(128, 512)`, as called at resnet_lines/two_models.py:30." in text
    assert "as called at resnet_lines/two_models.py:30" in shown[8]
