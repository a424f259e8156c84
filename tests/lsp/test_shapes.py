"""Shapes through forward() in the editor: inlay hints, a failing forward() as a
diagnostic on the user's line, and the quick fix that makes it run."""

from __future__ import annotations

from pathlib import Path

import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES
from tests.lsp.conftest import (
    SERVER,
    eventually,
    initialize,
    inlay_hints,
    label,
    lens_titles,
    open_file,
)

SEED = FIXTURES / "recipe/models.py"


async def test_inlay_hints_show_the_shapes_forward_assigns(client: LanguageClient) -> None:
    doc = open_file(client, SEED)

    async def forward_hints() -> dict[tuple[int, int], lsp.InlayHint] | None:
        found = await inlay_hints(client, doc)
        return found if (44, 14) in found else None

    capabilities = client.initialized.capabilities  # type: ignore[attr-defined]
    assert capabilities.inlay_hint_provider
    hints = await eventually(forward_hints)
    shown = {position: label(hint) for position, hint in hints.items()}
    assert shown == {
        (19, 9): ": [1, 784]",  # NeuralNetwork, its input guessed from Linear(784 -> ...)
        (20, 14): ": [1, 10]",
        (21, 14): ": [1, 10]",
        (42, 9): ": [1, 64, 12, 12]",  # CNN: x = self.features(x)
        (43, 9): ": [1, 10]",
        (44, 14): ": [1, 10]",  # after `return`
    }
    hint = hints[(42, 9)]
    assert hint.kind == lsp.InlayHintKind.Type and not hint.padding_left
    assert "CNN with torch.randn(1, 1, 28, 28) (guessed from Conv2d" in str(hint.tooltip)
    assert set(await inlay_hints(client, doc, 42, 43)) == {(42, 9), (43, 9)}  # the range asked
    assert client.hint_refreshes >= 1  # type: ignore[attr-defined]

    client.set_configuration({"paramlens": {"layerHints": True}})
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=None))
    line_11 = SEED.read_text().splitlines()[10]

    async def layer_hints() -> dict[tuple[int, int], lsp.InlayHint] | None:
        found = await inlay_hints(client, doc, 11, 11)
        return found or None

    [(position, hint)] = (await eventually(layer_hints)).items()
    assert position == (11, len(line_11))  # at the end of the line
    [lens] = [t for line, t in (await lens_titles(client, doc)).items() if line == 11]
    assert label(hint) == lens  # the same figures as the layer's lens
    assert label(hint).startswith("Linear(784 -> 512) · 401,920") and hint.padding_left


LENET = (FIXTURES / "shapes/lenet.py").read_text()  # fc1 declares 256, receives 400


@pytest_lsp.fixture(config=SERVER)
async def lenet_client(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "pyproject.toml").write_text(
        '[tool.paramlens.inputs]\nLeNet = "torch.randn(1, 3, 32, 32)"\n'
    )
    (tmp_path / "lenet.py").write_text(LENET)
    await initialize(lsp_client, tmp_path)
    lsp_client.root = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def apply(text: str, edit: lsp.TextEdit) -> str:
    """``text`` with ``edit`` applied (positions in characters, one line each here)."""
    lines = text.splitlines(keepends=True)
    start, end = edit.range.start, edit.range.end
    assert start.line == end.line
    line = lines[start.line]
    lines[start.line] = line[: start.character] + edit.new_text + line[end.character :]
    return "".join(lines)


async def code_actions(
    client: LanguageClient, doc: str, line: int, diagnostics: list[lsp.Diagnostic]
) -> list[lsp.CodeAction]:
    found = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(doc),
            lsp.Range(lsp.Position(line - 1, 4), lsp.Position(line - 1, 4)),
            lsp.CodeActionContext(diagnostics=diagnostics),
        )
    )
    assert all(isinstance(a, lsp.CodeAction) for a in found or [])
    return [a for a in found or [] if isinstance(a, lsp.CodeAction)]


async def test_a_shape_mismatch_is_a_warning_with_a_quick_fix_that_makes_it_run(
    lenet_client: LanguageClient,
) -> None:
    client = lenet_client
    capabilities = client.initialized.capabilities  # type: ignore[attr-defined]
    assert list(capabilities.code_action_provider.code_action_kinds) == ["quickfix"]
    doc = open_file(client, client.root / "lenet.py")  # type: ignore[attr-defined]

    async def forward_failed() -> list[lsp.Diagnostic] | None:
        found = client.diagnostics.get(doc, [])
        return [d for d in found if d.code == "forward-failed"] or None

    [diagnostic] = await eventually(forward_failed)
    assert list(client.diagnostics[doc]) == [diagnostic]  # the model itself built
    assert diagnostic.range.start.line + 1 == 18  # x = F.relu(self.fc1(x))
    assert diagnostic.severity == lsp.DiagnosticSeverity.Warning
    assert diagnostic.source == "paramlens"
    assert diagnostic.message == (
        "self.fc1 is Linear(256 -> 120) but receives [1, 400]: "
        "in_features should be 400 (declared at line 11)"
    )
    [related] = diagnostic.related_information or []
    assert related.location.uri == doc and related.location.range.start.line + 1 == 11
    assert related.message == "declared here"
    shown = await lens_titles(client, doc)  # the parameter lenses stay
    assert shown[11].startswith("Linear(256 -> 120) · 30,840")
    assert shown[5].startswith("LeNet · 43,876 params")
    before = await inlay_hints(client, doc)
    assert label(before[(17, 9)]) == ": [1, 400]" and (19, 14) not in before

    assert await code_actions(client, doc, 3, []) == []  # nothing to fix there
    [action] = await code_actions(client, doc, 18, [diagnostic])
    assert action.title == "Set in_features to 400 (Linear at line 11)"
    assert action.kind == lsp.CodeActionKind.QuickFix and list(action.diagnostics or ()) == [
        diagnostic
    ]
    assert action.edit is not None and action.edit.document_changes is not None
    [change] = action.edit.document_changes
    assert isinstance(change, lsp.TextDocumentEdit)
    assert change.text_document.uri == doc and change.text_document.version == 1
    [edit] = change.edits
    assert isinstance(edit, lsp.TextEdit)
    fixed = apply(LENET, edit)
    assert fixed.splitlines()[10] == "        self.fc1 = nn.Linear(400, 120)"
    assert fixed.replace("Linear(400, 120)", "Linear(256, 120)") == LENET  # nothing else

    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(2, doc),
            [lsp.TextDocumentContentChangeWholeDocument(fixed)],
        )
    )
    # until it is analysed again: hints on unchanged lines, no fix for lines that may move
    assert label((await inlay_hints(client, doc))[(17, 9)]) == ": [1, 400]"
    assert await code_actions(client, doc, 18, [diagnostic]) == []
    client.text_document_did_save(lsp.DidSaveTextDocumentParams(lsp.TextDocumentIdentifier(doc)))

    async def runs() -> dict[tuple[int, int], lsp.InlayHint] | None:
        found = await inlay_hints(client, doc)
        return found if (19, 14) in found else None

    after = await eventually(runs)
    assert label(after[(18, 9)]) == ": [1, 120]" and label(after[(19, 14)]) == ": [1, 84]"
    assert list(client.diagnostics[doc]) == []
    assert (await lens_titles(client, doc))[11].startswith("Linear(400 -> 120) · 48,120")


@pytest_lsp.fixture(config=SERVER)
async def settings_client(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "lenet.py").write_text(LENET)  # its input only in the editor's settings
    await initialize(
        lsp_client, tmp_path, settings={"inputs": {"LeNet": "torch.randn(1, 3, 32, 32)"}}
    )
    lsp_client.root = tmp_path  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_a_file_opened_as_the_editor_starts_is_analysed_with_its_settings(
    settings_client: LanguageClient,
) -> None:
    # opened at once after initialized, while the server is still asking for the settings:
    # without them LeNet would run a guessed 28 x 28 input, which fits, and show no warning
    doc = open_file(settings_client, settings_client.root / "lenet.py")  # type: ignore[attr-defined]

    async def warned() -> list[lsp.Diagnostic] | None:
        found = settings_client.diagnostics.get(doc, [])
        return [d for d in found if d.code == "forward-failed"] or None

    [warning] = await eventually(warned)
    assert "in_features should be 400" in warning.message


SLOW_FORWARD = """import time

from torch import nn


class SlowForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        time.sleep(1)  # within the tests' forward() budget: half their 3 s timeout
        return self.fc(x)
"""


async def test_a_file_opened_shows_parameters_first_then_forwards_shapes(
    client: LanguageClient,
) -> None:
    doc = open_file(client, FIXTURES / "recipe/slow_forward.py", SLOW_FORWARD)
    first = await lens_titles(client, doc, fresh=False)
    assert first[6].startswith("SlowForward · 36 params") and first[6].endswith(" · shapes…")
    assert first[9] == "Linear(8 -> 4) · 36"
    final = await lens_titles(client, doc)
    assert "shapes…" not in final[6] and "@ [1, 8]" in final[6]
    assert final[9] == "Linear(8 -> 4) · 36 · → [1, 4]"
