"""``lsp_*`` helpers: from paramlens results to lsprotocol types.

LSP lines are 0-based; paramlens lines are 1-based, as editors show them. Every
conversion between the two happens here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from lsprotocol import types as lsp

from .. import render
from ..engine.constructors import SettingsProblem
from ..worker.protocol import ErrorInfo, ErrorKind, ForwardInfo, LayerEntry, ModelResult
from . import fixes
from .documents import DocumentState

SOURCE = "paramlens"
FORWARD_FAILED = "forward-failed"
STALE_NOTE = "(stale: from the last successful analysis)"
# what a quick fix edits: (uri, text, version) of a file, as the editor has it if it is open
SourceReader = Callable[[str], tuple[str, str, int | None] | None]
SUMMARY_COMMAND = "paramlens.summary"
MODELS_COMMAND = "paramlens.models"


def lsp_range(line: int, text: str = "") -> lsp.Range:
    """The range of 1-based ``line``, from its first non-blank character to its end."""
    indent = len(text) - len(text.lstrip())
    return lsp.Range(
        start=lsp.Position(line=line - 1, character=indent),
        end=lsp.Position(line=line - 1, character=max(len(text), indent)),
    )


def _uri(state: DocumentState, file: str) -> str:
    return state.uri if file == str(Path(state.path)) else Path(file).as_uri()


def _layer_figures(state: DocumentState) -> Iterator[tuple[LayerEntry, int, str]]:
    """Layer lines worth a figure, with the text their lens or inlay hint shows."""
    for entry, line in state.layers():
        if not render.has_figures(entry):
            continue  # an nn.ReLU() that forward() never called: nothing to say
        yield entry, line, render.render_layer_lens(entry, state.line_stale(line))


def lsp_code_lenses(state: DocumentState, layer_lenses: bool) -> list[lsp.CodeLens]:
    lenses = []
    siblings = state.report.models if state.report else ()
    pending = state.report is not None and state.report.shapes_pending
    for model, line in state.models():
        command = lsp.Command(
            title=render.render_model_lens(model, state.model_stale(model), siblings, pending),
            command=SUMMARY_COMMAND if model.error is None else "",
            arguments=[state.uri, model.name] if model.error is None else None,
        )
        lenses.append(lsp.CodeLens(range=lsp_range(line, state.line_text(line)), command=command))
    if layer_lenses:
        for _entry, line, title in _layer_figures(state):
            owner = state.enclosing_model(line)
            arguments = [state.uri, owner.name] if owner and owner.error is None else None
            command = lsp.Command(
                title=title,
                command=SUMMARY_COMMAND if arguments else "",
                arguments=arguments,
            )
            lenses.append(
                lsp.CodeLens(range=lsp_range(line, state.line_text(line)), command=command)
            )
    return lenses


def _within(shown: lsp.Range, line: int) -> bool:
    """Whether 1-based ``line`` is in the LSP range ``shown``."""
    return shown.start.line <= line - 1 <= shown.end.line


def lsp_inlay_hints(
    state: DocumentState, shown: lsp.Range, layer_hints: bool
) -> list[lsp.InlayHint]:
    """Tensor shapes after the names forward() assigns and after ``return`` (on lines
    unchanged since the analysis); with ``layer_hints``, each layer line's figures at its
    end. Lines run with several shapes (loops, several models) list each once."""
    models = state.report.models if state.report else ()
    found: dict[tuple[int, int], tuple[list[str], list[str]]] = {}  # shapes, where from
    for (at, byte_column, _), seen in render.inline_shapes_at(
        models, str(Path(state.path))
    ).items():
        line = state.unchanged_line(at)
        if line is None or not _within(shown, line):
            continue
        column = fixes.char_column(state.line_text(line), byte_column)
        shapes, sources = found.setdefault((line, column), ([], []))
        shapes += [shape for shape in seen.shapes if shape not in shapes]
        sources += [source for source in seen.sources if source not in sources]
    note = f"\n{STALE_NOTE}" if state.stale else ""
    hints = [
        lsp.InlayHint(
            position=lsp.Position(line=line - 1, character=column),
            label=": " + " | ".join(shapes),
            kind=lsp.InlayHintKind.Type,
            tooltip="\n".join(dict.fromkeys(sources)) + note,
            padding_left=False,
        )
        for (line, column), (shapes, sources) in found.items()
    ]
    if layer_hints:
        for _entry, line, title in _layer_figures(state):
            if _within(shown, line):
                end = lsp.Position(line=line - 1, character=len(state.line_text(line)))
                hints.append(lsp.InlayHint(position=end, label=title, padding_left=True))
    return sorted(hints, key=lambda h: (h.position.line, h.position.character))


def lsp_hover(state: DocumentState, line: int) -> lsp.Hover | None:
    """Hover on a layer line (its parameters) or on a class line (its totals)."""
    model = state.model_at(line)
    if model is not None:
        text = render.render_class_hover(model, state.report.models if state.report else ())
    else:
        entry = state.layer_at(line)
        if entry is None:
            return None
        owner = state.enclosing_model(line)
        text = render.render_line_hover(entry, owner)
    if (model is not None and state.model_stale(model)) or state.line_stale(line):
        text += f"\n\n*{STALE_NOTE}*"
    content = lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text)
    return lsp.Hover(contents=content, range=lsp_range(line, state.line_text(line)))


_SEVERITY: dict[ErrorKind, lsp.DiagnosticSeverity] = {
    "needs-args": lsp.DiagnosticSeverity.Information,
    "timeout": lsp.DiagnosticSeverity.Warning,
    "blocked": lsp.DiagnosticSeverity.Warning,
    "memory": lsp.DiagnosticSeverity.Warning,
}


def _diagnostic_text(model: ModelResult | None, error: ErrorInfo) -> str:
    if model is None:
        return error.message
    if error.kind == "needs-args":
        return (
            f"{error.message}. paramlens cannot build it on its own; say how in "
            f"pyproject.toml:\n{error.traceback}"
        )
    return f"{model.name} cannot be built: {error.message}"


def lsp_diagnostics(state: DocumentState) -> list[lsp.Diagnostic]:
    """One diagnostic per model that could not be built, at the user's line that failed,
    and one per line where forward() failed with the example input."""
    diagnostics = []
    here = str(Path(state.path))
    siblings = state.latest.models if state.latest else ()
    for model, error in state.errors():
        if model is not None and render.measured_elsewhere(model, siblings):
            continue  # needs arguments, but its lens shows what its instances weigh
        related = None
        if error.file == here and error.line:
            line = error.line
        else:
            line = model.line if model is not None else (error.line or 1)
            if error.file and error.line:
                location = lsp.Location(uri=Path(error.file).as_uri(), range=lsp_range(error.line))
                related = [
                    lsp.DiagnosticRelatedInformation(location=location, message=error.message)
                ]
        diagnostics.append(
            lsp.Diagnostic(
                range=lsp_range(line, state.line_text(line)),
                message=_diagnostic_text(model, error),
                severity=_SEVERITY.get(error.kind, lsp.DiagnosticSeverity.Error),
                source=SOURCE,
                code=error.kind,
                related_information=related,
            )
        )
    seen: set[tuple[int, str]] = set()
    for model, forward, error in state.forward_failures():
        diagnostic = _forward_diagnostic(state, model, forward, error)
        if (diagnostic.range.start.line, diagnostic.message) not in seen:
            seen.add((diagnostic.range.start.line, diagnostic.message))
            diagnostics.append(diagnostic)
    return diagnostics


def lsp_settings_diagnostics(
    problems: Sequence[SettingsProblem], text: str
) -> list[lsp.Diagnostic]:
    """Settings not applied as written, at their lines of the pyproject.toml ``text``."""
    lines = text.splitlines()
    return [
        lsp.Diagnostic(
            range=lsp_range(p.line, lines[p.line - 1] if p.line <= len(lines) else ""),
            message=p.message,
            severity=lsp.DiagnosticSeverity.Warning,
            source=SOURCE,
            code="settings",
        )
        for p in problems
        if p.line is not None
    ]


def _forward_diagnostic(
    state: DocumentState, model: ModelResult, forward: ForwardInfo, error: ErrorInfo
) -> lsp.Diagnostic:
    """On the line of forward() that raised; if that is in another file (a helper that
    forward() calls), on the class line, pointing there."""
    related = []
    if error.file == str(Path(state.path)) and error.line:
        line = error.line
    else:
        line = model.line
        if error.file and error.line:
            location = lsp.Location(uri=_uri(state, error.file), range=lsp_range(error.line))
            related.append(lsp.DiagnosticRelatedInformation(location, error.message))
    if forward.declared is not None:
        file, declared = forward.declared
        text = state.line_text(declared) if _uri(state, file) == state.uri else ""
        location = lsp.Location(uri=_uri(state, file), range=lsp_range(declared, text))
        related.append(lsp.DiagnosticRelatedInformation(location, "declared here"))
    return lsp.Diagnostic(
        range=lsp_range(line, state.line_text(line)),
        message=error.message,
        severity=lsp.DiagnosticSeverity.Warning,
        source=SOURCE,
        code=FORWARD_FAILED,
        related_information=related or None,
    )


def _workspace_edit(
    uri: str, version: int | None, edit: lsp.TextEdit, versioned: bool
) -> lsp.WorkspaceEdit:
    """With the document's version when the client checks it (it refuses an edit made for
    another version of the text), else plain changes."""
    if not versioned:
        return lsp.WorkspaceEdit(changes={uri: [edit]})
    document = lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
    return lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(document, [edit])])


def lsp_code_actions(
    state: DocumentState,
    asked: lsp.Range,
    only: Sequence[str] | None,
    read: SourceReader,
    versioned: bool,
) -> list[lsp.CodeAction]:
    """Quick fixes for forward-failed diagnostics in ``asked`` whose fix is one number in
    a layer's declaration. None while the document has changed since its analysis: the
    lines the fix names may have moved."""
    kind = lsp.CodeActionKind.QuickFix
    if state.stale or (only and not any(k in ("", kind) for k in only)):
        return []
    actions: list[lsp.CodeAction] = []
    for model, forward, error in state.forward_failures():
        fix = forward.fix
        diagnostic = _forward_diagnostic(state, model, forward, error)
        if fix is None or not _within(asked, diagnostic.range.start.line + 1):
            continue
        source = read(fix.file)
        if source is None:
            continue
        uri, text, version = source
        span = fixes.argument_span(text, fix.line, fix.layer, fix.param, fix.old)
        if span is None:
            continue
        start = lsp.Position(line=span.line - 1, character=span.column)
        end = lsp.Position(line=span.end_line - 1, character=span.end_column)
        edit = lsp.TextEdit(range=lsp.Range(start=start, end=end), new_text=str(fix.new))
        changes = _workspace_edit(uri, version, edit, versioned)
        where = f"line {fix.line}" if uri == state.uri else f"{Path(fix.file).name}:{fix.line}"
        title = f"Set {fix.param} to {fix.new} ({fix.layer} at {where})"
        if all(a.title != title for a in actions):
            actions.append(
                lsp.CodeAction(
                    title, kind=kind, diagnostics=[diagnostic], edit=changes, is_preferred=True
                )
            )
    return actions
