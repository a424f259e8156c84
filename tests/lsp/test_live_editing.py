"""Live editing: lenses follow their lines, stay (stale) through errors, and recover."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import eventually, lens_titles, lenses, open_file, titles, uri


def edit(
    client: LanguageClient,
    document_uri: str,
    version: int,
    line: int,
    text: str,
    end_line: int | None = None,
) -> None:
    """Replace 0-based lines [line, end_line) with ``text`` (an insertion if end_line is None)."""
    end = lsp.Position(end_line if end_line is not None else line, 0)
    change = lsp.TextDocumentContentChangePartial(
        range=lsp.Range(lsp.Position(line, 0), end), text=text
    )
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(version, document_uri), [change]
        )
    )


def save(client: LanguageClient, document_uri: str) -> None:
    client.text_document_did_save(
        lsp.DidSaveTextDocumentParams(lsp.TextDocumentIdentifier(document_uri))
    )


@pytest.fixture
def seed_copy(tmp_path: Path) -> Path:
    target = tmp_path / "ws"
    shutil.copytree(FIXTURES / "recipe", target)
    return target / "models.py"


async def test_lenses_follow_inserted_lines_then_refresh_on_save(
    client: LanguageClient, seed_copy: Path
) -> None:
    doc = open_file(client, seed_copy)
    before = await lens_titles(client, doc)
    edit(client, doc, 2, 3, "import math\nimport os\n\n")  # three lines above both classes

    moved = titles(await lenses(client, doc))  # answered at once, without a new build
    assert moved[9] == before[6] + " (stale)"
    assert moved[14] == "Linear(784 -> 512) · 401,920 · → [1, 512] (stale)"
    assert 11 not in moved

    save(client, doc)
    fresh = await lens_titles(client, doc)
    assert fresh[9].startswith("NeuralNetwork · 669,706 params · 669,706 trainable · 2.6 MB")
    assert fresh[14] == "Linear(784 -> 512) · 401,920 · → [1, 512]"


async def test_a_syntax_error_keeps_the_last_good_lenses(
    client: LanguageClient, seed_copy: Path
) -> None:
    doc = open_file(client, seed_copy)
    await lens_titles(client, doc)
    edit(client, doc, 2, 10, "            nn.Linear(28 * 28, 512\n", end_line=11)  # unclosed call
    save(client, doc)

    async def syntax_diagnostic() -> list[lsp.Diagnostic] | None:
        found = client.diagnostics.get(doc, [])
        return [d for d in found if d.code == "syntax"] or None

    [diagnostic] = await eventually(syntax_diagnostic)
    assert diagnostic.severity == lsp.DiagnosticSeverity.Error
    assert "SyntaxError" in diagnostic.message
    stale = titles(await lenses(client, doc))
    assert (
        stale[6].endswith("(stale)")
        and stale[11] == "Linear(784 -> 512) · 401,920 · → [1, 512] (stale)"
    )

    edit(
        client, doc, 3, 10, "            nn.Linear(28 * 28, 256),\n", end_line=11
    )  # fixed, and changed
    save(client, doc)
    fresh = await lens_titles(client, doc)
    assert fresh[11] == "Linear(784 -> 256) · 200,960 · → [1, 256]"
    # the syntax error is gone; the next layer now gets 256 features instead of 512
    [diagnostic] = client.diagnostics[doc]
    assert (diagnostic.code, diagnostic.range.start.line + 1) == ("forward-failed", 20)
    assert "in_features should be 256" in diagnostic.message


async def test_layer_lenses_can_be_turned_off(client: LanguageClient) -> None:
    doc = open_file(client, FIXTURES / "recipe/models.py")
    await lens_titles(client, doc)
    client.set_configuration({"paramlens": {"layerLenses": False}})
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=None))

    async def only_class_lenses() -> dict[int, str] | None:
        shown = titles(await lenses(client, doc))
        return shown if set(shown) == {6, 24} else None

    await eventually(only_class_lenses)


async def test_bad_settings_are_a_message_not_a_crash(client: LanguageClient) -> None:
    client.set_configuration({"paramlens": {"timeout": "soon", "device": "gpu"}})
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=None))
    doc = open_file(client, FIXTURES / "recipe/models.py")
    shown = await lens_titles(client, doc)
    assert shown[6].startswith("NeuralNetwork · 669,706 params")
    texts = [m.message for m in client.messages]
    assert any("timeout must be a number; using 10.0" in t for t in texts), texts
    assert any("device must be one of meta, cpu" in t for t in texts), texts


async def test_a_file_outside_the_workspace_is_analysed_on_its_own(
    client: LanguageClient, tmp_path: Path
) -> None:
    outside = tmp_path / "loose.py"
    outside.write_text(
        "import torch\n\n\nclass Loose(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.w = torch.nn.Parameter(torch.zeros(3, 5))\n"
    )
    doc = open_file(client, outside)
    shown = await lens_titles(client, doc)
    assert shown[7] == "Parameter · 15"
    assert uri(outside) == doc


async def test_while_typing_the_newest_text_wins(client: LanguageClient, seed_copy: Path) -> None:
    client.set_configuration({"paramlens": {"analyzeOnChange": True, "debounceMs": 50}})
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=None))
    doc = open_file(client, seed_copy)
    await lens_titles(client, doc)
    for version, width in enumerate(range(100, 130), start=2):  # faster than builds finish
        edit(client, doc, version, 14, f"            nn.Linear(512, {width}),\n", end_line=15)
        await asyncio.sleep(0.02)

    async def last_width() -> str | None:
        shown = titles(await lenses(client, doc))
        title = shown.get(15, "")
        return title if title == "Linear(512 -> 129) · 66,177 · → [1, 129]" else None

    await eventually(last_width)
    await asyncio.sleep(1)  # nothing older arrives later and overwrites it
    assert titles(await lenses(client, doc))[15] == "Linear(512 -> 129) · 66,177 · → [1, 129]"


async def test_cancelled_analyses_never_show_a_server_error(client: LanguageClient) -> None:
    doc = open_file(client, FIXTURES / "recipe/models.py")  # starts the worker: asks for progress
    for _ in range(5):  # each re-analysis cancels the one before, mid-request to the client
        client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=None))
    await lens_titles(client, doc)
    await asyncio.sleep(0.5)
    assert [m.message for m in client.messages if m.type == lsp.MessageType.Error] == []


async def test_an_edit_shows_in_the_open_files_that_import_it(
    client: LanguageClient, tmp_path: Path
) -> None:
    """A config class's default edited in one file (transformers' configuration_llama.py)
    changes the models of another open file that builds with it (modeling_llama.py): that
    file is analysed again too, with the unsaved text, and shown stale meanwhile."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("")
    config = project / "config.py"
    config.write_text(
        "from dataclasses import dataclass\n\n\n@dataclass\nclass Config:\n    width: int = 8\n"
    )
    model = project / "model.py"
    model.write_text(
        "from torch import nn\n\nfrom config import Config\n\n\n"
        "class Net(nn.Module):\n    def __init__(self, config: Config):\n"
        "        super().__init__()\n        self.fc = nn.Linear(config.width, config.width)\n"
    )
    client.set_configuration({"paramlens": {"analyzeOnChange": True, "debounceMs": 50}})
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=None))
    config_doc, model_doc = open_file(client, config), open_file(client, model)

    async def net_lens(params: str) -> str | None:
        title = titles(await lenses(client, model_doc)).get(6, "")
        return title if f"Net · {params} params" in title and "stale" not in title else None

    await eventually(lambda: net_lens("72"))
    edit(client, config_doc, 2, 5, "    width: int = 16\n", end_line=6)
    await eventually(lambda: net_lens("272"), timeout=30)
    assert config.read_text().endswith("width: int = 8\n")  # never saved


async def test_an_edit_in_a_package_is_run_during_its_debounce(
    client: LanguageClient, tmp_path: Path
) -> None:
    """In a package the worker's zygote imported, an edit's module runs again as soon as
    it is typed (a prepared process), and its analysis, after the debounce, builds from
    that process: the lens shows the edited width."""
    shutil.copytree(FIXTURES / "livepkg", tmp_path / "ws")
    (tmp_path / "ws" / "pyproject.toml").write_text("")
    vit = tmp_path / "ws" / "zoo" / "vit.py"
    client.set_configuration({"paramlens": {"analyzeOnChange": True, "debounceMs": 300}})
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=None))
    document = open_file(client, vit)
    line = next(
        i for i, t in enumerate(vit.read_text().splitlines(), 1) if t.startswith("class ViT(")
    )

    async def vit_lens() -> str | None:
        title = titles(await lenses(client, document)).get(line, "")
        return title if "ViT ·" in title and "stale" not in title and "…" not in title else None

    before = await eventually(vit_lens)

    async def analysed() -> bool | None:  # its factories too: the file was built, not opened
        ready = [s for s in client.status if s.state == "ready"]  # type: ignore[attr-defined]
        return bool(ready) or None

    await eventually(analysed)
    index = (
        vit.read_text()
        .splitlines()
        .index(
            "    def __init__(self, dim: int = 64, depth: int = 2, patch: int = 8, classes: int = 10):"
        )
    )
    edit(
        client,
        document,
        2,
        index,
        "    def __init__(self, dim: int = 40, depth: int = 2, patch: int = 8, classes: int = 10):\n",
        end_line=index + 1,
    )

    async def new_lens() -> str | None:
        title = await vit_lens()
        return title if title is not None and title != before else None

    await eventually(new_lens, timeout=60)
    logged = [m.message for m in client.log_messages]
    assert any("prepared for the edit" in m for m in logged), logged
    assert any("forks from the process prepared for its text" in m for m in logged), logged
