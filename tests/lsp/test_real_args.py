"""Issue 20 in the editor: lenses and hovers of models built with their projects' own
arguments say where those came from (a config file, a script's line, a config method)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import SERVER, eventually, initialize, lens_titles, open_file, uri
from tests.lsp.test_lenses_and_hovers import hover

REAL = FIXTURES / "realargs"
pytestmark = pytest.mark.timeout(120)


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The editor opened on the fixture project (its paths relative to it)."""
    await initialize(lsp_client, REAL)
    yield
    await lsp_client.shutdown_session()


async def test_config_files_are_listed_on_the_class_lens(client: LanguageClient) -> None:
    doc = open_file(client, REAL / "src/models/components/dense_net.py")
    shown = await lens_titles(client, doc)
    assert shown[6] == (
        "DenseNet · experiment/wide.yaml (model.net) 282,634 · model/deep.yaml (net) 54,538"
        " · model/mnist.yaml (net) 6,666 · +1 more"
    )
    text = await hover(client, doc, 6)
    assert (
        "| model/mnist.yaml (net) | 6,666 | 6,666 | 26.0 KB | `configs/model/mnist.yaml:9` |"
        in (text)
    )
    assert "`lightning/config.yaml:7`" in text
    assert not client.diagnostics.get(doc)


async def test_the_scripts_model_and_the_config_method_on_their_lenses(
    client: LanguageClient,
) -> None:
    gan = open_file(client, REAL / "gan.py")
    shown = await lens_titles(client, gan)
    assert shown[34].startswith("Generator · 68,736 params · 68,736 trainable · 268.5 KB")
    assert "· as built at gan.py:50 ·" in shown[34]
    text = await hover(client, gan, 34)
    assert "Built with `Generator(ngpu)`, as built at gan.py:50." in text
    methods = open_file(client, REAL / "configmethod.py")
    shown = await lens_titles(client, methods)
    assert shown[57].startswith("Mixer · 1,386 params")
    assert "· from Mixer.default_config(), example num_classes=10 ·" in shown[57]
    text = await hover(client, methods, 57)
    assert "Some of its arguments are examples" in text


async def test_a_malformed_config_is_a_diagnostic_on_its_class(
    client: LanguageClient, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"  # outside the editor's folder: a project of its own
    shutil.copytree(REAL, workspace)
    broken = workspace / "configs/model/broken.yaml"
    broken.write_text("_target_: src.models.components.dense_net.DenseNet\n  bad: [\n")
    doc = open_file(client, workspace / "src/models/components/dense_net.py")
    shown = await lens_titles(client, doc)
    assert "model/mnist.yaml (net) 6,666" in shown[6]  # the others are unaffected

    async def diagnostics() -> list[lsp.Diagnostic] | None:
        return [d for d in client.diagnostics.get(doc, []) if d.code == "syntax"] or None

    [found] = await eventually(diagnostics)
    assert found.range.start.line == 5  # the class line
    assert found.message.startswith("model/broken.yaml") and "YAML error" in found.message
    assert found.related_information is not None
    related = found.related_information[0].location
    assert related.uri == broken.resolve().as_uri() and related.range.start.line == 1


@pytest_lsp.fixture(config=SERVER)
async def two_mlps(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The editor opened on a copy of fixtures/ambiguous: two classes named MLP."""
    lsp_client.workspace = tmp_path / "ws"  # type: ignore[attr-defined]
    shutil.copytree(FIXTURES / "ambiguous", lsp_client.workspace)  # type: ignore[attr-defined]
    await initialize(lsp_client, lsp_client.workspace)  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_a_bare_class_name_several_classes_answer_to_is_flagged_on_its_line(
    two_mlps: LanguageClient,
) -> None:
    """Item 5: the warning is a diagnostic on the pyproject.toml line of each ambiguous key
    (the file need not be open), the class is built as if the key were absent, and the
    diagnostics go once the keys pick one class each."""
    lsp_client = two_mlps
    workspace: Path = lsp_client.workspace  # type: ignore[attr-defined]
    doc = open_file(lsp_client, workspace / "nanogpt/model.py")
    shown = await lens_titles(lsp_client, doc)
    assert "with example arguments n_embd=32" in shown[6]
    pyproject = uri(workspace / "pyproject.toml")

    async def flagged() -> list[lsp.Diagnostic] | None:
        return lsp_client.diagnostics.get(pyproject)

    found = await eventually(flagged)
    # the pyproject.toml opened too (as TOML: a client may send any file it edits): it is
    # no Python file to analyse, and its diagnostics stay, on open and on close
    toml = workspace / "pyproject.toml"
    lsp_client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(pyproject, "toml", 1, toml.read_text()))
    )
    lsp_client.text_document_did_save(
        lsp.DidSaveTextDocumentParams(lsp.TextDocumentIdentifier(doc))
    )
    await lens_titles(lsp_client, doc)
    await asyncio.sleep(1)
    assert lsp_client.diagnostics.get(pyproject) == found
    lsp_client.text_document_did_close(
        lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(pyproject))
    )
    await asyncio.sleep(0.5)
    assert lsp_client.diagnostics.get(pyproject) == found
    assert [(d.range.start.line + 1, d.severity, d.source) for d in found] == [
        (8, lsp.DiagnosticSeverity.Warning, "paramlens"),
        (11, lsp.DiagnosticSeverity.Warning, "paramlens"),
    ]
    assert found[0].message == (
        '"MLP" in [tool.paramlens.models] names 2 classes (mine.py::MLP, nanogpt/model.py::MLP)'
        ' and is applied to none: to pick one, key it by "path.py::Class", e.g. "mine.py::MLP"'
    )
    assert (found[0].range.start.character, found[0].range.end.character) == (0, 22)
    assert not lsp_client.diagnostics.get(doc)  # not the other MLP's failure
    text = (workspace / "pyproject.toml").read_text().replace("\nMLP =", '\n"mine.py::MLP" =')
    (workspace / "pyproject.toml").write_text(text)
    lsp_client.text_document_did_save(
        lsp.DidSaveTextDocumentParams(lsp.TextDocumentIdentifier(doc))
    )

    async def cleared() -> bool:
        return len(lsp_client.diagnostics.get(pyproject, "not published")) == 0

    await eventually(cleared)
