"""Notebook documents (LSP 3.17 notebook sync): one analysed module per notebook, its
figures and diagnostics shown in its cells.

A notebook is analysed as one document (a :class:`~.documents.DocumentState` under the
notebook's URI, whose text is the module of its code cells, :mod:`paramlens.analysis.notebook`):
lenses, hovers and inlay hints are computed for that module as for a file, then kept to the
cell asked about and moved to its lines. Cell URIs (``vscode-notebook-cell:``) are never
paths. No pygls server here: the handlers in :mod:`.server` call these.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import attrs
from lsprotocol import types as lsp

from ..analysis.notebook import CellSpan, NotebookSource
from ..engine.engine import FileReport
from ..render import declared_in_cell
from ..worker.protocol import InlineShape
from .convert import SOURCE, lsp_range
from .documents import DocumentState, LineMap, document_key

PYTHON_LANGUAGES = frozenset({"python", "python3", "ipython"})

# what the server advertises: Jupyter notebooks' Python cells
SYNC_OPTIONS = lsp.NotebookDocumentSyncOptions(
    notebook_selector=[
        lsp.NotebookDocumentFilterWithNotebook(
            notebook=lsp.NotebookDocumentFilterNotebookType(notebook_type="jupyter-notebook"),
            cells=[lsp.NotebookCellLanguage(language="python")],
        )
    ],
    save=True,
)


@dataclass
class NotebookState:
    """What the server keeps of an open notebook beside its analysed document."""

    uri: str
    cells: list[str]  # its Python code cells' URIs, in order
    source: NotebookSource
    # cells shown before: their diagnostics are cleared when they go
    published: set[str] = dataclasses.field(default_factory=set)

    def span_of(self, cell_uri: str) -> CellSpan | None:
        key = document_key(cell_uri)
        for uri, span in zip(self.cells, self.source.cells):
            if document_key(uri) == key:
                return span
        return None

    def broken(self, span: CellSpan) -> bool:
        return any(e.cell == span.number for e in self.source.errors)

    def broken_lines(self) -> list[tuple[int, int]]:
        """The module lines of the cells left out for not compiling, first and last."""
        return [
            (span.first_line, span.first_line + span.line_count - 1)
            for span in self.source.cells
            if self.broken(span)
        ]


def code_cells(notebook: lsp.NotebookDocument, language_of: dict[str, str | None]) -> list[str]:
    """The URIs of the notebook's code cells whose language is Python (or unknown)."""
    return [
        cell.document
        for cell in notebook.cells
        if cell.kind == lsp.NotebookCellKind.Code
        and (language_of.get(cell.document) or "python").lower() in PYTHON_LANGUAGES
    ]


def _in_cell(line0: int, span: CellSpan) -> bool:
    """Whether 0-based module line ``line0`` is in the cell."""
    return span.first_line - 1 <= line0 < span.first_line - 1 + span.line_count


def _moved(range_: lsp.Range, by: int) -> lsp.Range:
    return lsp.Range(
        start=lsp.Position(line=range_.start.line + by, character=range_.start.character),
        end=lsp.Position(line=range_.end.line + by, character=range_.end.character),
    )


def to_module(range_: lsp.Range, span: CellSpan) -> lsp.Range:
    """A range of the cell as a range of the module."""
    return _moved(range_, span.first_line - 1)


def lenses_in_cell(lenses: Sequence[lsp.CodeLens], span: CellSpan) -> list[lsp.CodeLens]:
    return [
        attrs.evolve(lens, range=_moved(lens.range, 1 - span.first_line))
        for lens in lenses
        if _in_cell(lens.range.start.line, span)
    ]


def hints_in_cell(hints: Sequence[lsp.InlayHint], span: CellSpan) -> list[lsp.InlayHint]:
    moved = []
    for hint in hints:
        if _in_cell(hint.position.line, span):
            position = lsp.Position(
                line=hint.position.line + 1 - span.first_line, character=hint.position.character
            )
            moved.append(attrs.evolve(hint, position=position))
    return moved


def hover_in_cell(hover: lsp.Hover | None, span: CellSpan) -> lsp.Hover | None:
    if hover is None or hover.range is None:
        return hover
    return attrs.evolve(hover, range=_moved(hover.range, 1 - span.first_line))


def actions_in_cells(
    actions: Sequence[lsp.CodeAction], notebook: NotebookState, span: CellSpan
) -> list[lsp.CodeAction]:
    """Quick fixes worked out on the notebook's module, as edits of its cells (an edit of
    another file stays as it is) and with their diagnostics on the cell asked about."""
    shown = []
    for action in actions:
        edit = action.edit
        if edit is None or edit.changes is None:
            continue  # asked for unversioned edits: see the handler
        changes: dict[str, list[lsp.TextEdit]] = {}
        for target, edits in edit.changes.items():
            for text_edit in edits:
                place = _cell_at(notebook, text_edit.range.start.line)
                if document_key(target) != document_key(notebook.uri) or place is None:
                    changes.setdefault(target, []).append(text_edit)
                    continue
                cell_uri, cell = place
                moved = attrs.evolve(text_edit, range=_moved(text_edit.range, 1 - cell.first_line))
                changes.setdefault(cell_uri, []).append(moved)
        diagnostics = [
            attrs.evolve(d, range=_moved(d.range, 1 - span.first_line))
            for d in action.diagnostics or ()
            if _in_cell(d.range.start.line, span)
        ]
        shown.append(
            attrs.evolve(action, edit=lsp.WorkspaceEdit(changes=changes), diagnostics=diagnostics)
        )
    return shown


def _cell_at(notebook: NotebookState, line0: int) -> tuple[str, CellSpan] | None:
    """The cell (its URI and span) holding 0-based module line ``line0``."""
    for cell_uri, span in zip(notebook.cells, notebook.source.cells):
        if _in_cell(line0, span):
            return cell_uri, span
    return None


@contextlib.contextmanager
def stale_if_broken(
    state: DocumentState, notebook: NotebookState, span: CellSpan
) -> Iterator[None]:
    """A cell that does not compile shows its last figures as stale while it is fixed."""
    stale = state.stale
    state.stale = stale or notebook.broken(span)
    try:
        yield
    finally:
        state.stale = stale


def cell_diagnostics(
    notebook: NotebookState, diagnostics: Sequence[lsp.Diagnostic], module_uris: set[str]
) -> dict[str, list[lsp.Diagnostic]]:
    """The module's diagnostics on the cells they fall in, and each left-out cell's error,
    by cell URI (every cell, so that those without any are cleared). Related locations in
    the notebook itself (``module_uris``) point at the cell."""
    by_cell: dict[str, list[lsp.Diagnostic]] = {uri: [] for uri in notebook.cells}
    spans = list(zip(notebook.cells, notebook.source.cells))
    if not spans:
        return by_cell

    def place(line0: int) -> tuple[str, CellSpan]:
        for uri, span in spans:
            if _in_cell(line0, span):
                return uri, span
        return spans[0]  # a line of no cell: the notebook's first

    for diagnostic in diagnostics:
        uri, span = place(diagnostic.range.start.line)
        related = []
        message = diagnostic.message
        for info in diagnostic.related_information or []:
            location = info.location
            if document_key(location.uri) in module_uris:
                line = location.range.start.line + 1
                message = declared_in_cell(message, line, notebook.source.locate(line))
                to_uri, to_span = place(location.range.start.line)
                location = lsp.Location(
                    uri=to_uri, range=_moved(location.range, 1 - to_span.first_line)
                )
            related.append(attrs.evolve(info, location=location))
        shown = attrs.evolve(
            diagnostic,
            message=message,
            range=_moved(diagnostic.range, 1 - span.first_line)
            if _in_cell(diagnostic.range.start.line, span)
            else lsp.Range(start=lsp.Position(0, 0), end=lsp.Position(0, 0)),
            related_information=related or None,
        )
        by_cell[uri].append(shown)
    for error in notebook.source.errors:
        uri, span = spans[error.cell - 1]
        by_cell[uri].append(
            lsp.Diagnostic(
                range=lsp_range(error.line),
                message=f"{error.message} (paramlens left this cell out; "
                "its figures are those from before)",
                severity=lsp.DiagnosticSeverity.Error,
                source=SOURCE,
                code="syntax",
            )
        )
    return by_cell


def with_broken_cells_kept(
    new: FileReport,
    old: FileReport | None,
    lines: LineMap | None,
    notebook: NotebookState,
    unchanged: Callable[[int], int | None],
) -> FileReport:
    """``new``, plus the models and layer figures ``old`` had in the cells now left out
    for not compiling (their classes are missing from ``new``): a cell being fixed keeps
    its figures, shown stale, while the other cells get their new ones: its classes' lenses,
    its layers' figures and the shapes forward() gave its lines (inlay hints), moved to the
    lines they are on now (``lines`` maps ``old``'s); a line edited since has no shapes
    (``unchanged``: where an analysed line is now if its text is the same, else None)."""
    broken = notebook.broken_lines()
    if old is None or lines is None or not broken or new.syntax_error is not None:
        return new

    def now(line: int) -> int | None:
        current = lines.get(line)
        if current is None or not any(a <= current <= b for a, b in broken):
            return None
        return current

    def shapes_now(shapes: tuple[InlineShape, ...]) -> tuple[InlineShape, ...]:
        moved = []
        for shape in shapes:
            line = now(shape.line) if str(Path(shape.file)) == module_file else None
            if line is not None and unchanged(shape.line) == line:
                moved.append(dataclasses.replace(shape, line=line))
        return tuple(moved)

    module_file = str(Path(new.path))
    names = {m.name for m in new.models}
    kept = []
    for model in old.models:
        line = now(model.line)
        if line is not None and model.name not in names:
            forward = model.forward
            if forward is not None:
                forward = dataclasses.replace(forward, lines=shapes_now(forward.lines))
            kept.append(dataclasses.replace(model, line=line, forward=forward))
    figures = dict(new.lines)
    for analysed, entry in old.lines.items():
        line = now(analysed)
        if line is not None and line not in figures:
            figures[line] = entry
    if not kept and len(figures) == len(new.lines):
        return new
    models = tuple(sorted((*new.models, *kept), key=lambda m: m.line))
    return dataclasses.replace(new, models=models, lines=dict(sorted(figures.items())))
