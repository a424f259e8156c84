"""Shapes converted for the editor (pure: no server, no worker): inlay hints, also while
the text changes before the next analysis, and forward() failures as diagnostics."""

from __future__ import annotations

from lsprotocol import types as lsp
from paramlens.engine.engine import FileReport
from paramlens.lsp.convert import lsp_code_actions, lsp_diagnostics, lsp_inlay_hints
from paramlens.lsp.documents import DocumentState
from paramlens.worker.protocol import ErrorInfo, ForwardInfo, InlineShape, ModelResult, ShapeFix

PATH = "/ws/net.py"
TEXT = (
    "class Net(nn.Module):\n"  # 1
    "    def forward(self, x):\n"  # 2
    "        x = self.a(x)\n"  # 3
    "        y = self.b(x)\n"  # 4
    "        return y\n"  # 5
)
EVERYTHING = lsp.Range(lsp.Position(0, 0), lsp.Position(10_000, 0))


def analysed() -> DocumentState:
    shapes = (
        InlineShape(PATH, 3, 9, "x", ("[1, 8]",)),
        InlineShape(PATH, 4, 9, "y", ("[1, 4]", "[2, 4]")),  # a line run with two shapes
        InlineShape(PATH, 5, 14, "return", ("[1, 4]",)),
        InlineShape("/ws/other.py", 3, 9, "x", ("[9]",)),  # another file's line 3
    )
    forward = ForwardInfo("torch.randn(1, 8)", "pyproject.toml", lines=shapes)
    model = ModelResult("Net", PATH, 1, total_params=10, forward=forward)
    state = DocumentState("file:///ws/net.py", PATH, TEXT, 1)
    state.accept(FileReport(PATH, (model,), {}), state.generation)
    return state


def shown(state: DocumentState) -> dict[tuple[int, int], object]:
    return {
        (h.position.line + 1, h.position.character): h.label
        for h in lsp_inlay_hints(state, EVERYTHING, layer_hints=False)
    }


def test_hints_of_this_file_after_names_and_return() -> None:
    assert shown(analysed()) == {
        (3, 9): ": [1, 8]",
        (4, 9): ": [1, 4] | [2, 4]",
        (5, 14): ": [1, 4]",
    }


def test_stale_hints_move_with_their_lines_and_leave_edited_ones() -> None:
    state = analysed()
    text = TEXT.replace("        y = self.b(x)", "        yy = self.b(x)")  # edited in place
    state.edit("import torch\n\n" + text, 2)  # and two lines inserted above
    assert state.stale
    assert shown(state) == {(5, 9): ": [1, 8]", (7, 14): ": [1, 4]"}


def test_a_failure_in_a_helper_file_is_shown_on_the_class_line_pointing_there() -> None:
    error = ErrorInfo("RuntimeError: boom", "/ws/helpers.py", 7, "forward")
    forward = ForwardInfo("torch.randn(1, 8)", "pyproject.toml", error=error, declared=(PATH, 3))
    net = ModelResult("Net", PATH, 1, total_params=10, forward=forward)
    factory = ModelResult("net", PATH, 1, total_params=10, forward=forward, kind="factory")
    state = DocumentState("file:///ws/net.py", PATH, TEXT, 1)
    state.accept(FileReport(PATH, (net, factory), {}), state.generation)
    [diagnostic] = lsp_diagnostics(state)  # the class and its factory: one diagnostic
    assert (diagnostic.range.start.line + 1, diagnostic.code) == (1, "forward-failed")
    assert diagnostic.severity == lsp.DiagnosticSeverity.Warning
    where = [
        (r.location.uri, r.location.range.start.line + 1, r.message)
        for r in diagnostic.related_information or ()
    ]
    assert where == [
        ("file:///ws/helpers.py", 7, "RuntimeError: boom"),
        ("file:///ws/net.py", 3, "declared here"),
    ]


def test_a_quick_fix_may_edit_another_file() -> None:
    blocks = "from torch import nn\n\nhead = lambda: nn.Linear(in_features=256, out_features=2)\n"
    error = ErrorInfo("self.head is Linear(256 -> 2) but receives [1, 8]", PATH, 4, "forward")
    fix = ShapeFix("/ws/blocks.py", 3, "Linear", "in_features", 256, 8)
    forward = ForwardInfo("x", "pyproject.toml", error=error, fix=fix)
    state = DocumentState("file:///ws/net.py", PATH, TEXT, 1)
    model = ModelResult("Net", PATH, 1, total_params=10, forward=forward)
    state.accept(FileReport(PATH, (model,), {}), state.generation)
    files = {"/ws/blocks.py": ("file:///ws/blocks.py", blocks, None)}
    line_4 = lsp.Range(lsp.Position(3, 0), lsp.Position(3, 0))

    [action] = lsp_code_actions(state, line_4, None, files.get, versioned=False)
    assert action.title == "Set in_features to 8 (Linear at blocks.py:3)"
    assert action.edit is not None and action.edit.changes is not None
    [edit] = action.edit.changes["file:///ws/blocks.py"]
    column = blocks.splitlines()[2].index("256")
    assert (edit.range.start.line, edit.range.start.character) == (2, column)
    assert (edit.range.end.line, edit.range.end.character, edit.new_text) == (2, column + 3, "8")
    assert lsp_code_actions(state, line_4, ["refactor"], files.get, versioned=False) == []
    line_2 = lsp.Range(lsp.Position(1, 0), lsp.Position(1, 0))
    assert lsp_code_actions(state, line_2, None, files.get, versioned=False) == []
