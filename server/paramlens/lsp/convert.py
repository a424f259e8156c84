"""``lsp_*`` helpers: from paramlens results to lsprotocol types.

LSP lines are 0-based; paramlens lines are 1-based, as editors show them. Every
conversion between the two happens here.
"""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp

from .. import render
from ..worker.protocol import ErrorInfo, ModelResult
from .documents import DocumentState

SOURCE = "paramlens"
SUMMARY_COMMAND = "paramlens.summary"
MODELS_COMMAND = "paramlens.models"


def lsp_range(line: int, text: str = "") -> lsp.Range:
    """The range of 1-based ``line``, from its first non-blank character to its end."""
    indent = len(text) - len(text.lstrip())
    return lsp.Range(
        start=lsp.Position(line=line - 1, character=indent),
        end=lsp.Position(line=line - 1, character=max(len(text), indent)),
    )


def lsp_code_lenses(state: DocumentState, layer_lenses: bool) -> list[lsp.CodeLens]:
    lenses = []
    siblings = state.report.models if state.report else ()
    for model, line in state.models():
        command = lsp.Command(
            title=render.render_model_lens(model, state.stale, siblings),
            command=SUMMARY_COMMAND if model.error is None else "",
            arguments=[state.uri, model.name] if model.error is None else None,
        )
        lenses.append(lsp.CodeLens(range=lsp_range(line, state.line_text(line)), command=command))
    if layer_lenses:
        for entry, line in state.layers():
            if entry.params == 0:
                continue  # nn.ReLU() and friends: nothing to say
            owner = state.enclosing_model(line)
            arguments = [state.uri, owner.name] if owner and owner.error is None else None
            command = lsp.Command(
                title=render.render_layer_lens(entry, state.stale),
                command=SUMMARY_COMMAND if arguments else "",
                arguments=arguments,
            )
            lenses.append(
                lsp.CodeLens(range=lsp_range(line, state.line_text(line)), command=command)
            )
    return lenses


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
    if state.stale:
        text += "\n\n*(stale: from the last successful analysis)*"
    content = lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text)
    return lsp.Hover(contents=content, range=lsp_range(line, state.line_text(line)))


_SEVERITY = {
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
    """One diagnostic per model that could not be built, at the user's line that failed."""
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
    return diagnostics
