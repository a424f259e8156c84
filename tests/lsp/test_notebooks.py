"""Notebooks over LSP 3.17 notebook sync: figures in the right cell, at the right line,
through cell edits, added, moved and removed cells, a cell that does not compile, an
untitled notebook, and close."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from paramlens.analysis.notebook import read_cells
from paramlens.lsp.convert import STALE_NOTE
from pytest_lsp import LanguageClient

from tests.conftest import FIXTURES, FUTURE_LATER, LENET_CELLS
from tests.lsp.conftest import eventually, inlay_hints, label, lens_titles, lenses, titles, uri

pytestmark = pytest.mark.timeout(180)


class Notebook:
    """A notebook as VS Code syncs it: a notebook URI, one text document per cell."""

    def __init__(self, client: LanguageClient, notebook_uri: str, cells: list[str]) -> None:
        self.client, self.uri, self.version = client, notebook_uri, 1
        self.count = 0
        self.cells: list[str] = []  # cell URIs, in order
        self.texts: dict[str, str] = {}
        items = [self._cell(text) for text in cells]
        client.notebook_document_did_open(
            lsp.DidOpenNotebookDocumentParams(
                lsp.NotebookDocument(
                    self.uri,
                    "jupyter-notebook",
                    1,
                    [lsp.NotebookCell(lsp.NotebookCellKind.Code, item.uri) for item in items],
                ),
                items,
            )
        )

    def _cell(self, text: str) -> lsp.TextDocumentItem:
        self.count += 1
        scheme = "vscode-notebook-cell" if self.uri.startswith("file:") else "untitled"
        cell_uri = f"{scheme}:{self.uri.partition(':')[2]}#W{self.count}sZmlsZQ%3D%3D"
        self.texts[cell_uri] = text
        return lsp.TextDocumentItem(cell_uri, "python", 1, text)

    def cell(self, number: int) -> str:
        """The URI of the code cell now at 1-based position ``number``."""
        return self.cells[number - 1] if self.cells else ""

    def _change(self, change: lsp.NotebookDocumentChangeEvent) -> None:
        self.version += 1
        self.client.notebook_document_did_change(
            lsp.DidChangeNotebookDocumentParams(
                lsp.VersionedNotebookDocumentIdentifier(self.version, self.uri), change
            )
        )

    def edit(self, cell_uri: str, line: int, text: str, end_line: int | None = None) -> None:
        """Replace 0-based lines [line, end_line) of a cell (an insertion without end_line)."""
        end = lsp.Position(end_line if end_line is not None else line, 0)
        change = lsp.TextDocumentContentChangePartial(
            range=lsp.Range(lsp.Position(line, 0), end), text=text
        )
        content = lsp.NotebookDocumentCellContentChanges(
            lsp.VersionedTextDocumentIdentifier(self.version + 1, cell_uri), [change]
        )
        self._change(
            lsp.NotebookDocumentChangeEvent(
                cells=lsp.NotebookDocumentCellChanges(text_content=[content])
            )
        )

    def splice(self, start: int, delete: int, texts: list[str] = (), moved: list[str] = ()) -> None:
        """Replace ``delete`` cells at 0-based ``start`` with new cells of ``texts`` (or,
        with ``moved``, with cells that exist already: a move)."""
        items = [self._cell(text) for text in texts]
        removed = self.cells[start : start + delete]
        new = [*moved, *(item.uri for item in items)]
        self.cells[start : start + delete] = new
        closed = [lsp.TextDocumentIdentifier(u) for u in removed if u not in moved]
        structure = lsp.NotebookDocumentCellChangeStructure(
            array=lsp.NotebookCellArrayChange(
                start, delete, [lsp.NotebookCell(lsp.NotebookCellKind.Code, u) for u in new]
            ),
            did_open=items or None,
            did_close=closed or None,
        )
        self._change(
            lsp.NotebookDocumentChangeEvent(
                cells=lsp.NotebookDocumentCellChanges(structure=structure)
            )
        )

    def save(self) -> None:
        self.client.notebook_document_did_save(
            lsp.DidSaveNotebookDocumentParams(lsp.NotebookDocumentIdentifier(self.uri))
        )

    def close(self) -> None:
        self.client.notebook_document_did_close(
            lsp.DidCloseNotebookDocumentParams(
                lsp.NotebookDocumentIdentifier(self.uri),
                [lsp.TextDocumentIdentifier(u) for u in self.cells],
            )
        )


def open_notebook(client: LanguageClient, path: Path, cells: list[str] | None = None) -> Notebook:
    texts = cells if cells is not None else read_cells(path.read_bytes())[0]
    notebook = Notebook(client, uri(path), texts)
    notebook.cells = list(notebook.texts)
    return notebook


@pytest.fixture
def mnist(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / "notebooks", tmp_path / "ws")
    return tmp_path / "ws" / "mnist.ipynb"


async def hover(client: LanguageClient, cell_uri: str, line: int) -> str:
    """The hover's text on 1-based ``line`` of a cell ("" if none)."""
    found = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(cell_uri), lsp.Position(line - 1, 12))
    )
    if found is None:
        return ""
    assert isinstance(found.contents, lsp.MarkupContent)
    return found.contents.value


NET_LENS = "Net · 101,770 params · 101,770 trainable · 397.5 KB"
FC1_LENS = "Linear(784 -> 128) · 100,480 · → [64, 128]"
MLP_LENS = "MLP · 203,530 params"


async def test_the_server_advertises_notebook_sync_for_python_cells(
    client: LanguageClient,
) -> None:
    capabilities = client.initialized.capabilities  # type: ignore[attr-defined]
    sync = capabilities.notebook_document_sync
    assert sync is not None and sync.save
    [selector] = sync.notebook_selector
    assert selector.notebook.notebook_type == "jupyter-notebook"
    assert [c.language for c in selector.cells] == ["python"]


async def test_lenses_hovers_and_inlay_hints_land_in_their_cells(
    client: LanguageClient, mnist: Path
) -> None:
    notebook = open_notebook(client, mnist)
    net_cell, mlp_cell = notebook.cell(3), notebook.cell(4)
    shown = await lens_titles(client, net_cell)
    assert shown[1].startswith(NET_LENS), shown  # the class line: line 1 of its cell
    assert shown[5] == FC1_LENS  # its input comes from the call in cell 5
    assert (await lens_titles(client, mlp_cell))[1].startswith(MLP_LENS)  # MLP(hidden=256)
    assert titles(await lenses(client, notebook.cell(1))) == {}  # imports and magics
    assert "100,480" in await hover(client, net_cell, 5)
    assert "101,770" in await hover(client, net_cell, 1)
    assert await hover(client, notebook.cell(5), 1) == ""
    hints = await inlay_hints(client, net_cell)
    assert label(hints[(10, 9)]) == ": [64, 784]"  # x = self.flatten(x), in forward()
    assert label(hints[(12, 14)]) == ": [64, 10]"
    assert all(line <= 12 for line, _ in hints)


async def test_cells_added_moved_and_removed_keep_the_figures_on_their_lines(
    client: LanguageClient, mnist: Path
) -> None:
    notebook = open_notebook(client, mnist)
    net_cell, mlp_cell = notebook.cell(3), notebook.cell(4)
    await lens_titles(client, net_cell)
    # a cell of three lines inserted first: the Net cell's lenses stay on its own lines
    notebook.splice(0, 0, ["import math\nimport os\nimport sys\n"])
    moved = titles(await lenses(client, net_cell))
    assert moved[1].startswith(NET_LENS) and moved[5].startswith(FC1_LENS)
    # MLP's cell moved above Net's, then the inserted cell removed
    notebook.splice(3, 2, moved=[mlp_cell, net_cell])
    notebook.splice(0, 1)
    notebook.save()
    assert (await lens_titles(client, net_cell))[5] == FC1_LENS
    assert (await lens_titles(client, mlp_cell))[1].startswith(MLP_LENS)
    # a cell's text edited: the config's width halves, the lens of the class says so
    notebook.edit(notebook.cell(2), 2, "    hidden: int = 64\n", end_line=3)
    notebook.save()

    async def narrower() -> dict[int, str] | None:
        shown = await lens_titles(client, net_cell)
        return shown if "50,890 params" in shown[1] else None

    assert (await eventually(narrower))[5] == "Linear(784 -> 64) · 50,240 · → [64, 64]"


async def test_a_cell_that_does_not_compile_is_stale_and_the_others_are_rebuilt(
    client: LanguageClient, mnist: Path
) -> None:
    notebook = open_notebook(client, mnist)
    net_cell, mlp_cell = notebook.cell(3), notebook.cell(4)
    await lens_titles(client, net_cell)
    notebook.edit(net_cell, 4, "        self.fc1 = nn.Linear(28 * 28, config.hidden\n", end_line=5)
    notebook.edit(mlp_cell, 6, "            nn.Linear(hidden, 20),\n", end_line=7)
    notebook.save()

    async def syntax_error() -> list[lsp.Diagnostic] | None:
        return [d for d in client.diagnostics.get(net_cell, []) if d.code == "syntax"] or None

    [diagnostic] = await eventually(syntax_error)
    assert diagnostic.range.start.line == 4  # the unclosed call ("(" was never closed)

    async def mlp_rebuilt() -> dict[int, str] | None:
        shown = await lens_titles(client, mlp_cell)
        return shown if "206,100 params" in shown[1] else None

    await eventually(mlp_rebuilt)  # MLP's cell: new figures (20 classes instead of 10)
    stale = titles(await lenses(client, net_cell))
    assert stale[1].startswith(NET_LENS) and stale[1].endswith("(stale)")
    assert stale[7] == "Linear(128 -> 10) · 1,290 · → [64, 10] (stale)"

    notebook.edit(net_cell, 4, "        self.fc1 = nn.Linear(28 * 28, config.hidden)\n", end_line=5)
    notebook.save()
    assert (await lens_titles(client, net_cell))[5] == FC1_LENS
    assert not [d for d in client.diagnostics.get(net_cell, []) if d.code == "syntax"]


async def test_an_untitled_notebook_is_analysed_from_its_cells(client: LanguageClient) -> None:
    cells = read_cells((FIXTURES / "notebooks" / "mnist.ipynb").read_bytes())[0]
    notebook = Notebook(client, "untitled:Untitled-1.ipynb", cells)
    notebook.cells = list(notebook.texts)
    assert (await lens_titles(client, notebook.cell(3)))[5] == FC1_LENS


async def test_close_clears_the_cells_diagnostics_and_lenses(
    client: LanguageClient, mnist: Path
) -> None:
    cells = read_cells(mnist.read_bytes())[0]
    cells[1] += "\nlayer = nn.Linear(4, 4\n"  # the Config cell (cell 2) does not compile
    notebook = open_notebook(client, mnist, cells)
    assert (await lens_titles(client, notebook.cell(4)))[1].startswith(MLP_LENS)  # built alone

    async def diagnosed() -> list[lsp.Diagnostic] | None:
        return client.diagnostics.get(notebook.cell(2)) or None

    [error] = await eventually(diagnosed)
    assert error.code == "syntax" and "left this cell out" in error.message
    notebook.close()

    async def cleared() -> bool:
        return not client.diagnostics.get(notebook.cell(2))

    await eventually(cleared)
    assert await lenses(client, notebook.cell(3)) == []


async def test_the_quick_fix_edits_the_cell_that_declares_the_layer(
    client: LanguageClient, tmp_path: Path
) -> None:
    # fc1 declares 256 inputs and receives 16 * 5 * 5 = 400 (the call in cell 3)
    (tmp_path / "pyproject.toml").write_text("")
    notebook = open_notebook(client, tmp_path / "lenet.ipynb", LENET_CELLS)
    lenet_cell = notebook.cell(2)

    async def forward_failed() -> list[lsp.Diagnostic] | None:
        found = client.diagnostics.get(lenet_cell, [])
        return [d for d in found if "in_features" in d.message or "400" in d.message] or None

    diagnostics = await eventually(forward_failed)
    assert diagnostics[0].message.endswith("(declared at In[2]:7)")  # not the module's line 10
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(lenet_cell),
            diagnostics[0].range,
            lsp.CodeActionContext(diagnostics=diagnostics),
        )
    )
    assert actions
    [action] = [a for a in actions if isinstance(a, lsp.CodeAction)]
    assert action.title.startswith("Set in_features to 400")
    assert action.edit is not None and action.edit.changes is not None
    [(target, [edit])] = action.edit.changes.items()
    assert target == lenet_cell and edit.new_text == "400"
    line = LENET_CELLS[1].splitlines()[edit.range.start.line]
    assert line == "        self.fc1 = nn.Linear(256, 120)"
    assert line[edit.range.start.character : edit.range.end.character] == "256"
    assert all(d.range.start.line < 13 for d in action.diagnostics or ())  # the cell's lines


async def test_a_broken_cell_keeps_its_forward_hints_marked_stale_until_it_compiles(
    client: LanguageClient, mnist: Path
) -> None:
    # analysed as the user types: every edit below is a notebookDocument/didChange alone
    client.set_configuration({"paramlens": {"analyzeOnChange": True, "debounceMs": 50}})
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=None))
    notebook = open_notebook(client, mnist)
    net_cell, mlp_cell = notebook.cell(3), notebook.cell(4)
    await lens_titles(client, net_cell)
    good = {at: label(h) for at, h in (await inlay_hints(client, net_cell)).items()}
    assert good == {(10, 9): ": [64, 784]", (11, 9): ": [64, 128]", (12, 14): ": [64, 10]"}
    mlp_hints = {at: label(h) for at, h in (await inlay_hints(client, mlp_cell)).items()}

    notebook.edit(net_cell, 4, "        self.fc1 = nn.Linear(28 * 28, config.hidden\n", end_line=5)
    notebook.edit(mlp_cell, 6, "            nn.Linear(hidden, 20),\n", end_line=7)

    async def mlp_rebuilt() -> dict[int, str] | None:  # the analysis of the broken text
        shown = await lens_titles(client, mlp_cell)
        return shown if "206,100 params" in shown[1] else None

    await eventually(mlp_rebuilt)
    assert [d.code for d in client.diagnostics.get(net_cell, [])] == ["syntax"]
    stale = await inlay_hints(client, net_cell)
    assert {at: label(h) for at, h in stale.items()} == good  # forward()'s, on their lines
    assert all(STALE_NOTE in str(h.tooltip) for h in stale.values())
    fresh = await inlay_hints(client, mlp_cell)  # the cell that compiles: its new figures
    assert {at: label(h) for at, h in fresh.items()} == {
        at: shape.replace("10]", "20]") for at, shape in mlp_hints.items()
    }
    assert not any(STALE_NOTE in str(h.tooltip) for h in fresh.values())

    # a line edited while the cell is still broken loses its hint, as a file's line does:
    # at once, and still once the analysis of that text (which keeps the cell's figures) is in
    def readies() -> int:
        return sum(s.state == "ready" for s in client.status)  # type: ignore[attr-defined]

    analysed = readies()
    notebook.edit(net_cell, 9, "        z = self.flatten(x)\n", end_line=10)
    after = {at: label(h) for at, h in (await inlay_hints(client, net_cell)).items()}
    assert after == {at: shape for at, shape in good.items() if at[0] != 10}
    await eventually(lambda: asyncio.sleep(0, result=readies() > analysed))
    after = {at: label(h) for at, h in (await inlay_hints(client, net_cell)).items()}
    assert after == {at: shape for at, shape in good.items() if at[0] != 10}

    notebook.edit(net_cell, 9, "        x = self.flatten(x)\n", end_line=10)
    notebook.edit(net_cell, 4, "        self.fc1 = nn.Linear(28 * 28, config.hidden)\n", end_line=5)

    async def rebuilt() -> dict[tuple[int, int], lsp.InlayHint] | None:
        shown = await inlay_hints(client, net_cell)
        return shown if not any(STALE_NOTE in str(h.tooltip) for h in shown.values()) else None

    assert {at: label(h) for at, h in (await eventually(rebuilt)).items()} == good
    assert not client.diagnostics.get(net_cell)


async def test_a_future_import_in_a_later_cell_keeps_its_cell_and_the_next_ones(
    client: LanguageClient, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    notebook = open_notebook(client, tmp_path / "nb.ipynb", FUTURE_LATER)
    net_cell = notebook.cell(3)
    shown = await lens_titles(client, net_cell)
    assert shown[1].startswith("Net · 288 params")  # needs cell 2's Config and its import
    assert shown[4] == "Linear(8 -> 32) · 288 · → [2, 32]"
    assert len(shown) == 2
    assert label((await inlay_hints(client, net_cell))[(7, 9)]) == ": [2, 32]"
    assert not client.diagnostics.get(notebook.cell(2))
